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
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Run a backend that answers each request with a JSON description of it",
		Long: `Run a small HTTP backend for trying the gateway: it answers with the request it
received (method, path, headers, request id), and serves /sse, /ws (WebSocket echo),
/status/{code} and /delay/{duration}.`,
		Example: "  portico echo --listen 127.0.0.1:9001 --name echo-1",
		Args:    cobra.NoArgs,
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
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
			}
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
	return cmd
}
