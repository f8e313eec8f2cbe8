package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/dlm/client"
)

type lockRunOptions struct {
	lo           *lockOptions
	t            lockTarget
	mode         string
	conflictExit int
}

func newLockRunCmd(lo *lockOptions) *cobra.Command {
	o := &lockRunOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "run --lockspace L --resource R --mode MODE [--noqueue] [--timeout D] -- COMMAND [ARG...]",
		Short: "Hold a lock while COMMAND runs",
		Long: `Take a lock in MODE, run COMMAND while holding it, release it when COMMAND
ends, and exit with COMMAND's exit status (128+N if a signal N ended it).

The lock belongs to repctl's connection to the DLM: if repctl dies, replicad
releases it. COMMAND never runs without the lock: it is killed if repctl
dies (SIGKILL from the kernel), and COMMAND's whole process group is
killed if the connection to the DLM is lost (replicad stopped). COMMAND
runs in a process group of its own (the terminal's foreground group when
stdin is a terminal); SIGINT, SIGQUIT, SIGTERM and SIGHUP sent to repctl
are passed to that group.

Exit 4 (or --conflict-exit-code) if the lock was not acquired (--noqueue,
--timeout); 127 if COMMAND was not found, 126 if it could not be run.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	o.t.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", "", "lock mode: NL, CR, CW, PR, PW or EX (required)")
	f.IntVar(&o.conflictExit, "conflict-exit-code", exitNotAcquired, "exit status when the lock is not acquired")
	// Flags end at COMMAND, so `repctl lock run … sh -c 'x'` needs no --.
	f.SetInterspersed(false)
	return cmd
}

func (o *lockRunOptions) run(cmd *cobra.Command, argv []string) error {
	if err := o.t.check(); err != nil {
		return err
	}
	mode, err := parseMode("mode", o.mode)
	if err != nil {
		return err
	}
	if o.conflictExit < 0 || o.conflictExit > 255 {
		return usageError{fmt.Errorf("--conflict-exit-code %d: want 0..255", o.conflictExit)}
	}
	c, err := o.lo.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	wctx, cancel := o.t.waitCtx(cmd.Context())
	defer cancel()
	started, status := false, 0
	err = client.RunLocked(wctx, c, o.t.lockspace, o.t.resource, mode, o.t.lockFlags(), func(context.Context) error {
		started = true
		var err error
		status, err = o.command(c, argv)
		return err
	})
	if err != nil {
		if !started {
			err = lockError(err, &o.t, mode)
			var ee exitError
			if errors.As(err, &ee) && ee.code == exitNotAcquired {
				ee.code = o.conflictExit
				return ee
			}
		}
		return err
	}
	if status != 0 {
		return exitError{code: status}
	}
	return nil
}

// command runs argv while the lock is held and returns its exit status.
// COMMAND runs in a process group of its own (the terminal's foreground
// group when stdin is a terminal), so that all of it can be signalled and,
// if the lock is lost, killed.
func (o *lockRunOptions) command(c *client.Client, argv []string) (int, error) {
	g := o.lo.g
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = g.in, g.out, g.errOut
	// Do not wait for a descendant that keeps COMMAND's output open.
	cmd.WaitDelay = 5 * time.Second
	// The kernel kills COMMAND if the thread that started it dies with
	// repctl: the thread stays locked to this goroutine until COMMAND ends.
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	tty := -1
	if f, ok := g.in.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			tty = int(f.Fd())
			attr.Foreground, attr.Ctty = true, tty
		}
	}
	cmd.SysProcAttr = attr
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return code, exitError{code: code, err: fmt.Errorf("running %s: %w", argv[0], err)}
	}
	if tty >= 0 {
		defer takeTerminalBack(tty)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-done:
			return exitStatus(err)
		case s := <-sigs:
			syscall.Kill(-pgid, s.(syscall.Signal))
		case <-c.Done():
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			return 1, exitError{code: 1, err: fmt.Errorf("lost the connection to the DLM (replicad stopped?): the lock on %s is no longer held, so %s was killed",
				&o.t, strings.Join(argv, " "))}
		}
	}
}

// takeTerminalBack makes repctl's process group the terminal's foreground
// group again once COMMAND, which had it, has ended.
func takeTerminalBack(tty int) {
	signal.Ignore(syscall.SIGTTOU) // a background group may not otherwise
	defer signal.Reset(syscall.SIGTTOU)
	unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, syscall.Getpgrp())
}

// exitStatus is a shell's view of how a command ended.
func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 1, err
}
