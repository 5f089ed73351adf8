package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/registry"
)

// Environment variables the registry commands read.
const (
	envRegistryURL   = "PORTICO_REGISTRY_URL"
	envRegistryToken = "PORTICO_REGISTRY_TOKEN"
	defaultRegistry  = "http://127.0.0.1:9901"
)

// registryConn holds the flags that reach a registry.
type registryConn struct{ url, token string }

// client returns a client of the registry, the flags falling back to the
// environment.
func (rc *registryConn) client() (*registry.Client, error) {
	u := cmp.Or(rc.url, os.Getenv(envRegistryURL), defaultRegistry)
	return registry.NewClient(u, registry.ClientOptions{Token: cmp.Or(rc.token, os.Getenv(envRegistryToken))})
}

func newRegistryCmd() *cobra.Command {
	rc := &registryConn{}
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "List, show and watch the instances in a Portico service registry",
		Long: `Read a service registry through its HTTP API (served under /registry/v1 on the
gateway's admin listener): list its services and their instances, show one
instance, or follow its changes as they happen.

The registry is found with --url, else $` + envRegistryURL + `, else ` + defaultRegistry + `.
When the registry requires a token for reads, pass --token or set $` + envRegistryToken + `.`,
		Example: `  portico registry ls
  portico registry ls orders --output json
  portico registry show orders orders-1
  portico registry watch orders --url http://10.0.0.5:9901`,
	}
	cmd.PersistentFlags().StringVar(&rc.url, "url", "", "registry base URL, the gateway's admin address (default $"+envRegistryURL+", else "+defaultRegistry+")")
	cmd.PersistentFlags().StringVar(&rc.token, "token", "", "bearer token (default $"+envRegistryToken+")")
	cmd.AddCommand(newRegistryLsCmd(rc), newRegistryShowCmd(rc), newRegistryWatchCmd(rc))
	return cmd
}

func newRegistryLsCmd(rc *registryConn) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "ls [service]",
		Short: "List the services, or the instances of one service",
		Long: `Without an argument, list every service with its number of instances, how many
pass their heartbeat and the versions they run. With a service, list its
instances. --output json prints the API's answer, with the revision to watch
from.`,
		Example: `  portico registry ls
  portico registry ls orders
  portico registry ls orders -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output: want table or json, not %q", output)
			}
			c, err := rc.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				services, rev, err := c.Services(cmd.Context())
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(out, map[string]any{"revision": rev, "services": services})
				}
				return servicesTable(out, services)
			}
			instances, rev, err := c.Instances(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(out, map[string]any{"revision": rev, "instances": instances})
			}
			if len(instances) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no instances of %q registered\n", args[0])
			}
			return instancesTable(out, instances, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newRegistryShowCmd(rc *registryConn) *cobra.Command {
	return &cobra.Command{
		Use:     "show SERVICE ID",
		Short:   "Print one instance as JSON",
		Example: "  portico registry show orders orders-1",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rc.client()
			if err != nil {
				return err
			}
			in, err := c.Instance(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), in)
		},
	}
}

func newRegistryWatchCmd(rc *registryConn) *cobra.Command {
	var (
		after   int64
		rawJSON bool
	)
	cmd := &cobra.Command{
		Use:   "watch [service]",
		Short: "Print the registry's changes as they happen, until interrupted",
		Long: `Follow the changes to one service, or to every service, one line each:
revision, type (put or delete), service/id, status and address. --json prints
each event as the API's JSON instead. A dropped connection is resumed where it
stopped. Runs until SIGINT (Ctrl-C) or SIGTERM.

By default only changes from now on are shown; --revision N shows every change
after revision N that the registry still keeps (take N from
"portico registry ls -o json").`,
		Example: `  portico registry watch
  portico registry watch orders --revision 42
  portico registry watch --json | jq .instance.address`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if after < 0 {
				return fmt.Errorf("--revision: %d is negative", after)
			}
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			c, err := rc.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := c.Watch(ctx, service, after)
			if err != nil {
				return err
			}
			defer w.Close()
			what := "all services"
			if service != "" {
				what = "service " + strconv.Quote(service)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "watching %s (interrupt to stop)\n", what)
			out := cmd.OutOrStdout()
			for {
				ev, err := w.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if rawJSON {
					err = json.NewEncoder(out).Encode(ev)
				} else {
					_, err = fmt.Fprintln(out, eventLine(ev))
				}
				if err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().Int64Var(&after, "revision", 0, "show the changes after this revision (default: from now on)")
	cmd.Flags().BoolVar(&rawJSON, "json", false, "print each event as a JSON line")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func servicesTable(w io.Writer, services []registry.ServiceSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINSTANCES\tPASSING\tVERSIONS")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Name, s.Instances, s.Passing, dash(strings.Join(s.Versions, ",")))
	}
	return tw.Flush()
}

func instancesTable(w io.Writer, instances []registry.Instance, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERSION\tADDRESS\tPROTOCOL\tZONE\tSTATUS\tLAST-HEARTBEAT")
	for _, in := range instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, dash(in.Version), in.Address,
			cmp.Or(in.Protocol, registry.ProtocolHTTP), dash(in.Zone), in.Status, age(now, in.LastHeartbeat))
	}
	return tw.Flush()
}

// eventLine is one change as the watch command prints it.
func eventLine(ev registry.Event) string {
	in := &ev.Instance
	return fmt.Sprintf("%d %-6s %s/%s %s %s", ev.Revision, ev.Type, in.Service, in.ID, dash(in.Status), dash(in.Address))
}

func dash(s string) string { return cmp.Or(s, "-") }

// age tells how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "<1s ago"
	}
	return d.Round(time.Second).String() + " ago"
}

// selfRegistration is the flags with which a server command (portico echo)
// registers itself in a registry while it runs.
type selfRegistration struct {
	url, service, id, version, zone, token, advertise string
	ttl                                               time.Duration

	reg *registry.Registration
}

func (s *selfRegistration) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.url, "register", "", "register in the registry at this base URL (the gateway's admin address) while running")
	f.StringVar(&s.service, "service", "echo", "service name to register under (with --register)")
	f.StringVar(&s.id, "id", "", "instance id to register (default <hostname>-<pid>-<port>)")
	f.StringVar(&s.version, "version", "", "version to register, such as v2")
	f.StringVar(&s.zone, "zone", "", "zone to register")
	f.DurationVar(&s.ttl, "ttl", 10*time.Second, "registration TTL; heartbeats go every third of it")
	f.StringVar(&s.token, "token", "", "registration token (default $"+envRegistryToken+")")
	f.StringVar(&s.advertise, "advertise", "", "host:port to register (default the listen address, 127.0.0.1 for an unspecified host)")
}

// start registers the instance listening at addr, when --register is set,
// and keeps it registered until stop or ctx ends.
func (s *selfRegistration) start(ctx context.Context, out, errOut io.Writer, addr net.Addr) error {
	if s.url == "" {
		return nil
	}
	c, err := registry.NewClient(s.url, registry.ClientOptions{
		Token:  cmp.Or(s.token, os.Getenv(envRegistryToken)),
		Logger: slog.New(slog.NewTextHandler(errOut, nil)),
	})
	if err != nil {
		return fmt.Errorf("--register: %w", err)
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	in := registry.Instance{
		Service: s.service,
		ID:      cmp.Or(s.id, defaultInstanceID(port)),
		Version: s.version,
		Zone:    s.zone,
		Address: cmp.Or(s.advertise, net.JoinHostPort(host, port)),
	}
	s.reg, err = c.Maintain(ctx, in, s.ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "registered %s/%s at %s in %s\n", in.Service, in.ID, in.Address, s.url)
	return nil
}

// stop deregisters the instance, if it was registered. It is idempotent.
func (s *selfRegistration) stop(errOut io.Writer) {
	if s.reg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.reg.Close(ctx); err != nil {
		fmt.Fprintln(errOut, "portico: deregister:", err)
	}
}

// defaultInstanceID is <hostname>-<pid>-<port>, with the characters an
// instance id may not hold replaced by '-'.
func defaultInstanceID(port string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return r
		}
		return '-'
	}, host)
	suffix := "-" + strconv.Itoa(os.Getpid()) + "-" + port
	return host[:min(len(host), 128-len(suffix))] + suffix
}
