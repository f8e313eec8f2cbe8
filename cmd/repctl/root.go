package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

// globals are the flags every command shares, and where it reads and
// writes.
type globals struct {
	socket string
	json   bool
	out    io.Writer
	errOut io.Writer // prompts
	in     io.Reader // answers to prompts
}

func (g *globals) client() *control.Client { return control.NewClient(g.socket) }

// printJSON writes v as indented JSON.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "repctl",
		Short:         "Manage a replicad node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv(control.SocketEnv)
	if def == "" {
		def = control.DefaultSocket
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", def, "replicad control socket (env "+control.SocketEnv+")")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts")
	root.AddCommand(newStatusCmd(g), newCreateMDCmd(g), newUpCmd(g), newDownCmd(g),
		newPrimaryCmd(g), newSecondaryCmd(g), newConnectCmd(g), newDisconnectCmd(g), newEventsCmd(g), newWaitSyncCmd(g), newVerifyCmd(g), newResumeIOCmd(g),
		newFenceCmd(g), newLVSCmd(g), newLockCmd(g))
	return root
}

// execute runs repctl and returns the exit status: 0 ok, 1 failure,
// 2 usage error, 3 daemon not running (a command that must answer with
// other codes, fence peer, returns an exitError).
func execute(args []string, stdout, stderr io.Writer) int {
	return executeIO(args, os.Stdin, stdout, stderr)
}

// executeIO is execute with stdin for prompts.
func executeIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{out: stdout, errOut: stderr, in: stdin}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var api *control.APIError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "repctl: %v\n", ee.err)
		}
		return ee.code
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintf(stderr, "repctl: replicad is not running (no control socket at %s); start it with `systemctl start replicad`, or try `replicad demo`\n", g.socket)
		return 3
	case errors.As(err, &api):
		fmt.Fprintf(stderr, "repctl: %s\n", api.Body.Message)
		if api.Hint() != "" {
			fmt.Fprintf(stderr, "hint: %s\n", api.Hint())
		}
		return 1
	case isUsage(err):
		fmt.Fprintf(stderr, "repctl: %v\nRun 'repctl --help' for usage.\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "repctl: %v\n", err)
	return 1
}

// exitError makes repctl exit with code, printing err if set.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// usageError marks errors in how repctl was called.
type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	// cobra's own argument and flag errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires ", "flag needs an argument", "invalid argument"} {
		if len(msg) >= len(p) && (msg[:len(p)] == p || contains(msg, p)) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// volumeArgs resolves VOLUME|--all into volume names.
func volumeArgs(ctx context.Context, g *globals, args []string, all bool) ([]string, error) {
	switch {
	case all && len(args) > 0:
		return nil, usageError{errors.New("give a volume name or --all, not both")}
	case all:
		st, err := g.client().Status(ctx)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, v := range st.Volumes {
			names = append(names, v.Name)
		}
		return names, nil
	case len(args) != 1:
		return nil, usageError{errors.New("give exactly one volume name (or --all)")}
	}
	return args, nil
}
