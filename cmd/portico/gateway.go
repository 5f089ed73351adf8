package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/internal/gateway"
	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/telemetry/logging"
)

func newGatewayCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the API gateway",
		Long: `Run the API gateway with a YAML configuration file.

The configuration reloads live when the file changes, on SIGHUP and on
POST /admin/reload; an invalid file is rejected with the reason and the running
configuration keeps serving. SIGTERM or SIGINT shut down gracefully.

See docs/configuration.md for every field.`,
		Example: "  portico gateway --config examples/quickstart/portico.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath)
			if err != nil {
				printProblems(cmd.ErrOrStderr(), err)
				return &exitError{code: 1, err: fmt.Errorf("configuration %s is invalid", configPath)}
			}
			logger, err := logging.New(os.Stderr, cfg.Logging.Level, cfg.Logging.Format)
			if err != nil {
				return err
			}
			useRedisLog(logger)
			logger.Debug("garbage collector target", "gogc", gateway.TuneGC())
			for _, w := range config.Warnings(cfg) {
				logger.Warn("configuration warning", "warning", w.String())
			}
			gw, err := gateway.New(cfg, gateway.WithLogger(logger), gateway.WithConfigPath(configPath))
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-hup:
						logger.Info("SIGHUP received; reloading configuration")
						_, _ = gw.Reload()
					case <-gw.Done():
						return
					}
				}
			}()
			return gw.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "portico.yaml", "configuration file")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}
