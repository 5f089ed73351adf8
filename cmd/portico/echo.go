package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/internal/echo"
)

func newEchoCmd() *cobra.Command {
	var listen, name string
	var self selfRegistration
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Run a backend that answers each request with a JSON description of it",
		Long: `Run a small HTTP backend for trying the gateway: it answers with the request it
received (method, path, headers, request id), and serves /sse, /ws (WebSocket echo),
/status/{code} and /delay/{duration}.

With --register it registers itself in a service registry once it listens,
heartbeats while it runs, and deregisters when it shuts down.`,
		Example: `  portico echo --listen 127.0.0.1:9001 --name echo-1
  portico echo --listen 127.0.0.1:0 --register http://127.0.0.1:9901 --service orders --version v2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = "echo@" + listen
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: echo.Handler(name), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			fmt.Fprintf(cmd.OutOrStdout(), "echo backend %q listening on %s\n", name, ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			defer self.stop(cmd.ErrOrStderr())
			if err := self.start(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), ln.Addr()); err != nil {
				_ = srv.Close()
				return err
			}
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
			}
			// Leave the registry first, so that no new traffic arrives while
			// the server drains.
			self.stop(cmd.ErrOrStderr())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9001", "address to listen on")
	cmd.Flags().StringVar(&name, "name", "", "instance name shown in replies (default echo@<listen>)")
	self.addFlags(cmd)
	return cmd
}
