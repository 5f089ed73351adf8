package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code for errors already reported.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "portico",
		Short: "Portico: an API gateway and platform for API-driven microservices",
		Long: `Portico runs the edge of a microservices system: an API gateway with routing,
policies, live reload, logs and metrics, and the tools around it.

Shell completion: portico completion bash|zsh|fish|powershell --help`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newGatewayCmd(), newValidateCmd(), newEchoCmd(), newRegistryCmd(), newVersionCmd())
	return root
}
