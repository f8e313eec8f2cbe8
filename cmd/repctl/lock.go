package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/dlm/client"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/internal/control"
)

// exitNotAcquired is repctl lock's exit status when a lock was not
// acquired: --noqueue found it held in an incompatible mode, or --timeout
// ran out (flock(1) has one code for both too).
const exitNotAcquired = 4

// lockOptions are the flags every `repctl lock` command shares.
type lockOptions struct {
	g *globals
	// dlmSocket overrides the DLM socket the daemon reports.
	dlmSocket string
}

// newLockCmd is `repctl lock`: the distributed lock manager on this node
// (docs/dlm.md).
func newLockCmd(g *globals) *cobra.Command {
	lo := &lockOptions{g: g}
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Distributed locks: lockspaces, dumps, taking locks from scripts",
		Long: `The distributed lock manager (DLM) coordinates nodes that share data, such as
a dual-primary volume. These commands show this node's lockspaces and locks
and take locks for scripts: 'repctl lock run' holds one while a command runs.

Exit status: 0 done, 1 error, 2 usage error, 3 replicad not running,
4 lock not acquired (--noqueue found it held, or --timeout ran out).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("give a lock command: ls, dump, join, leave, take, convert, release, run or fence-confirm")}
		},
	}
	cmd.PersistentFlags().StringVar(&lo.dlmSocket, "dlm-socket", "", "the DLM's local socket (default: the one replicad reports)")
	cmd.AddCommand(newLockLsCmd(lo), newLockDumpCmd(lo), newLockJoinCmd(lo), newLockLeaveCmd(lo), newLockTakeCmd(lo),
		newLockConvertCmd(lo), newLockReleaseCmd(lo), newLockRunCmd(lo), newLockFenceConfirmCmd(lo))
	return cmd
}

func (lo *lockOptions) info(ctx context.Context) (control.DLM, error) {
	var info control.DLM
	err := lo.g.client().Do(ctx, http.MethodGet, "/v1/dlm", nil, &info)
	return info, err
}

// dial connects to the DLM's local socket.
func (lo *lockOptions) dial(ctx context.Context) (*client.Client, error) {
	path := lo.dlmSocket
	if path == "" {
		info, err := lo.info(ctx)
		if err != nil {
			return nil, err
		}
		path = info.Socket
	}
	return client.Dial(ctx, path)
}

// lockTarget is the resource flags of take, convert, release and run.
type lockTarget struct {
	lockspace, resource string
	noqueue             bool
	timeout             time.Duration
}

func (t *lockTarget) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.lockspace, "lockspace", "", "the lockspace (required)")
	f.StringVar(&t.resource, "resource", "", "the resource name, 1-64 bytes (required)")
	f.BoolVar(&t.noqueue, "noqueue", false, "do not wait: exit 4 if the lock is held in an incompatible mode")
	f.DurationVar(&t.timeout, "timeout", 0, "give up waiting after this long (exit 4); 0 waits forever")
}

func (t *lockTarget) check() error {
	switch {
	case t.lockspace == "":
		return usageError{errors.New("--lockspace is required")}
	case t.resource == "":
		return usageError{errors.New("--resource is required")}
	case len(t.resource) > 64:
		return usageError{fmt.Errorf("--resource is %d bytes; the DLM takes 1-64", len(t.resource))}
	case t.timeout < 0:
		return usageError{errors.New("--timeout must not be negative")}
	}
	return nil
}

// waitCtx bounds waiting for a grant by --timeout.
func (t *lockTarget) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if t.timeout > 0 {
		return context.WithTimeout(ctx, t.timeout)
	}
	return context.WithCancel(ctx)
}

func (t *lockTarget) lockFlags() locktable.Flags {
	if t.noqueue {
		return locktable.NoQueue
	}
	return 0
}

func (t *lockTarget) String() string {
	return fmt.Sprintf("%s in lockspace %s", t.resource, t.lockspace)
}

func parseMode(flag, s string) (locktable.Mode, error) {
	m, err := locktable.ParseMode(s)
	if err != nil || s == "" {
		return m, usageError{fmt.Errorf("--%s %q: want NL, CR, CW, PR, PW or EX", flag, s)}
	}
	return m, nil
}

// adopt connects and takes over the persistent lock that `repctl lock
// take` left in mode (convert and release act on it). The caller closes
// the client.
func (lo *lockOptions) adopt(ctx context.Context, t *lockTarget, mode locktable.Mode) (*client.Client, *client.Lock, error) {
	c, err := lo.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, _, err := c.Lock(ctx, t.lockspace, t.resource, mode, locktable.Orphan|locktable.Persistent, nil)
	if err != nil {
		c.Close()
		return nil, nil, lockError(err, t, mode)
	}
	return c, l, nil
}

// lockError explains a DLM client error and picks the exit status.
func lockError(err error, t *lockTarget, mode locktable.Mode) error {
	switch {
	case errors.Is(err, client.ErrWouldBlock), errors.Is(err, client.ErrCancelled) && t.timeout > 0,
		errors.Is(err, context.DeadlineExceeded):
		why := "it is held in an incompatible mode (--noqueue)"
		if !errors.Is(err, client.ErrWouldBlock) {
			why = fmt.Sprintf("not granted within --timeout %v", t.timeout)
		}
		return exitError{code: exitNotAcquired, err: fmt.Errorf("%v on %s not acquired: %s", mode, t, why)}
	case errors.Is(err, client.ErrNotJoined):
		return fmt.Errorf("%w\nhint: join it with 'repctl lock join %s', or list it under dlm.lockspaces", err, t.lockspace)
	case errors.Is(err, client.ErrNoOrphan):
		return fmt.Errorf("%w\nhint: this node holds no lock taken with 'repctl lock take' on %s; 'repctl lock dump %s' shows the locks", err, t, t.lockspace)
	case errors.Is(err, client.ErrOrphanMode):
		return fmt.Errorf("%w\nhint: give the mode it is held in ('repctl lock dump %s')", err, t.lockspace)
	}
	return err
}

// nodeNames maps the DLM's node ids to names.
func nodeNames(info control.DLM) map[uint32]string {
	m := map[uint32]string{}
	for _, n := range info.Nodes {
		m[n.ID] = n.Name
	}
	return m
}

func namesOf(ids []locktable.NodeID, names map[uint32]string) string {
	var s []string
	for _, id := range ids {
		if n, ok := names[uint32(id)]; ok {
			s = append(s, n)
		} else {
			s = append(s, fmt.Sprint(id))
		}
	}
	return dash(strings.Join(s, ","))
}
