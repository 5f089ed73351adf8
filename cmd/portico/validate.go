package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/internal/gateway"
	"github.com/portico-dev/portico/internal/gateway/config"
)

func newValidateCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a gateway configuration file and exit non-zero if it is invalid",
		Long: `Check a gateway configuration file the way the gateway would load it: every
problem is listed with its file, line and field, then warnings (routes shadowed by
an earlier route, services no route uses). The exit code is 1 if there is any
problem and 0 otherwise; warnings alone do not fail.`,
		Example: "  portico validate --config examples/quickstart/portico.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, err := config.Load(configPath)
			if err == nil {
				err = gateway.Validate(cfg)
			}
			if err != nil {
				n := printProblems(errOut, err)
				return &exitError{code: 1, err: fmt.Errorf("%s: %d problem(s)", configPath, n)}
			}
			warnings := config.Warnings(cfg)
			for _, w := range warnings {
				fmt.Fprintln(errOut, "warning:", w.String())
			}
			fmt.Fprintf(out, "%s: valid (%d routes, %d services, %d warnings)\n", configPath, len(cfg.Routes), len(cfg.Services), len(warnings))
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "portico.yaml", "configuration file")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

// printProblems prints each problem of err on its own line and returns how many.
func printProblems(w io.Writer, err error) int {
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, "error:", e.Error())
		}
		return len(list)
	}
	fmt.Fprintln(w, "error:", err)
	return 1
}
