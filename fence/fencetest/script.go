package fencetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ScriptAgent is a fence agent written in POSIX sh that follows the
// fence-agents stdin protocol and keeps each port's power state in a file.
//
// Its behaviour is set by files in its directory (see Set):
//
//	fail-ACTION   N or "always": the next N calls of ACTION fail
//	fail-code     exit code of a failing call (default 1)
//	hang-ACTION   ACTION never returns (it waits on a sleeping child)
//	lag-off       N: after off, N status calls still report on
//	ignore-off    off succeeds but the power stays on (a lying device)
//	ports         output of the list action ("port,alias" lines)
//
// Every call appends "ACTION PORT" to the file "calls"; the stdin of the
// last call is kept in "last-stdin". A hanging call creates
// "hanging-ACTION" and writes its child's pid to "child-ACTION.pid".
type ScriptAgent struct {
	Dir  string
	Path string
}

const scriptTemplate = `#!/bin/sh
# replicad test fence agent; state in @DIR@
dir='@DIR@'
action=reboot
port=
stdin=$(cat)
printf '%s\n' "$stdin" > "$dir/last-stdin"
while IFS= read -r line; do
  case $line in
    action=*) action=${line#action=} ;;
    port=*) port=${line#port=} ;;
    plug=*) port=${line#plug=} ;;
  esac
done <<END_OF_STDIN
$stdin
END_OF_STDIN
p=${port:-_}
echo "$action $port" >> "$dir/calls"
take() {
  f="$dir/$1"
  [ -f "$f" ] || return 1
  n=$(cat "$f")
  [ "$n" = always ] && return 0
  [ "$n" -gt 0 ] 2>/dev/null || return 1
  echo $((n - 1)) > "$f"
  return 0
}
if [ -f "$dir/hang-$action" ]; then
  sleep 1000 &
  echo $! > "$dir/child-$action.pid"
  : > "$dir/hanging-$action"
  wait
  exit 1
fi
if take "fail-$action"; then
  code=$(cat "$dir/fail-code" 2>/dev/null || echo 1)
  echo "2026-01-01 00:00:00,000 ERROR: Failed: simulated $action failure" >&2
  exit "$code"
fi
case $action in
metadata)
  cat <<'END_OF_XML'
<?xml version="1.0" ?>
<resource-agent name="fence_replicad_test" shortdesc="replicad test fence agent">
<longdesc>A shell script that keeps power state in files.</longdesc>
<parameters>
	<parameter name="action" unique="0" required="1"><content type="string" default="reboot"/><shortdesc lang="en">Fencing action</shortdesc></parameter>
	<parameter name="port" unique="0" required="0"><content type="string"/><shortdesc lang="en">Plug</shortdesc></parameter>
	<parameter name="plug" unique="0" required="0"><content type="string"/><shortdesc lang="en">Plug</shortdesc></parameter>
	<parameter name="ip" unique="0" required="0"><content type="string"/><shortdesc lang="en">Address</shortdesc></parameter>
	<parameter name="username" unique="0" required="0"><content type="string"/><shortdesc lang="en">Login</shortdesc></parameter>
	<parameter name="password" unique="0" required="0"><content type="string"/><shortdesc lang="en">Password</shortdesc></parameter>
	<parameter name="lanplus" unique="0" required="0"><content type="boolean" default="0"/><shortdesc lang="en">Lanplus</shortdesc></parameter>
	<parameter name="power_wait" unique="0" required="0"><content type="second" default="0"/><shortdesc lang="en">Wait</shortdesc></parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
</actions>
</resource-agent>
END_OF_XML
  ;;
off)
  if [ ! -f "$dir/ignore-off" ]; then
    echo off > "$dir/power.$p"
    if [ -f "$dir/lag-off" ]; then cp "$dir/lag-off" "$dir/lag.$p"; fi
  fi
  echo "Success: Powered OFF" ;;
on)
  echo on > "$dir/power.$p"
  echo "Success: Powered ON" ;;
status)
  if take "lag.$p"; then echo "Status: ON"; exit 0; fi
  s=$(cat "$dir/power.$p" 2>/dev/null || echo on)
  if [ "$s" = off ]; then echo "Status: OFF"; exit 2; fi
  echo "Status: ON" ;;
monitor) ;;
list) cat "$dir/ports" 2>/dev/null ;;
*)
  echo "unsupported action $action" >&2
  exit 1 ;;
esac
exit 0
`

// NewScriptAgent writes the agent into dir (which must exist) as
// fence_replicad_test.
func NewScriptAgent(dir string) (*ScriptAgent, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(abs, "'\n") {
		return nil, fmt.Errorf("fencetest: directory %q cannot be quoted in a script", abs)
	}
	p := filepath.Join(abs, "fence_replicad_test")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(scriptTemplate, "@DIR@", abs)), 0o755); err != nil {
		return nil, err
	}
	return &ScriptAgent{Dir: abs, Path: p}, nil
}

// Set writes a behaviour file (see ScriptAgent); an empty value removes it.
func (s *ScriptAgent) Set(name, value string) error {
	p := filepath.Join(s.Dir, name)
	if value == "" {
		err := os.Remove(p)
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.WriteFile(p, []byte(value+"\n"), 0o644)
}

// Calls returns the "ACTION PORT" lines of every call so far.
func (s *ScriptAgent) Calls() []string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "calls"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// PowerCalls returns the off and on calls among Calls.
func (s *ScriptAgent) PowerCalls() []string {
	var out []string
	for _, c := range s.Calls() {
		if strings.HasPrefix(c, "off ") || strings.HasPrefix(c, "on ") {
			out = append(out, c)
		}
	}
	return out
}

// Power returns the stored power state of port: "on" or "off".
func (s *ScriptAgent) Power(port string) string {
	if port == "" {
		port = "_"
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, "power."+port))
	if err != nil {
		return "on"
	}
	return strings.TrimSpace(string(b))
}

// LastStdin returns what the last call read on stdin.
func (s *ScriptAgent) LastStdin() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "last-stdin"))
	return string(b)
}

// Exists reports whether the named file exists in the agent's directory
// (e.g. "hanging-off").
func (s *ScriptAgent) Exists(name string) bool {
	_, err := os.Stat(filepath.Join(s.Dir, name))
	return err == nil
}

// ReadFile returns a file of the agent's directory, trimmed.
func (s *ScriptAgent) ReadFile(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, name))
	return strings.TrimSpace(string(b))
}
