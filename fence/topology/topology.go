package topology

import (
	"fmt"
	"slices"
	"sort"
)

// Device is what topology needs to know about a fence device.
type Device struct {
	Name string
	// Hosts are targets fenced through a port named like the target.
	Hosts []string
	// Ports maps targets to the agent port (plug) that fences them.
	Ports map[string]string
}

// Rule gives a target explicit levels, each a list of device names.
type Rule struct {
	Target string
	Levels [][]string
}

// Step is one device of a level and the port it fences the target with.
type Step struct {
	Device string
	Port   string
}

// Level is a set of steps that must all succeed.
type Level []Step

// Problem is one mistake found by Check. Rule, Level and Index locate it in
// the rules (-1 where not applicable).
type Problem struct {
	Rule, Level, Index int
	What               string
}

func (p Problem) String() string {
	switch {
	case p.Index >= 0:
		return fmt.Sprintf("rules[%d].levels[%d][%d]: %s", p.Rule, p.Level, p.Index, p.What)
	case p.Level >= 0:
		return fmt.Sprintf("rules[%d].levels[%d]: %s", p.Rule, p.Level, p.What)
	default:
		return fmt.Sprintf("rules[%d]: %s", p.Rule, p.What)
	}
}

// Port returns the port d fences target with, if it can fence it.
func (d Device) Port(target string) (string, bool) {
	if p, ok := d.Ports[target]; ok {
		return p, true
	}
	if slices.Contains(d.Hosts, target) {
		return target, true
	}
	return "", false
}

// Targets returns every target d can fence, sorted.
func (d Device) Targets() []string {
	set := map[string]bool{}
	for _, h := range d.Hosts {
		set[h] = true
	}
	for h := range d.Ports {
		set[h] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Check reports every problem in rules given devices: an empty target, a
// target with two rules, no levels, an empty level, an unknown device, a
// device twice in one level, or a device that cannot fence the target.
func Check(devices []Device, rules []Rule) []Problem {
	byName := map[string]Device{}
	for _, d := range devices {
		byName[d.Name] = d
	}
	var ps []Problem
	seen := map[string]int{}
	for i, r := range rules {
		if r.Target == "" {
			ps = append(ps, Problem{i, -1, -1, "empty target"})
		} else if j, dup := seen[r.Target]; dup {
			ps = append(ps, Problem{i, -1, -1, fmt.Sprintf("target %q already has levels in rules[%d]", r.Target, j)})
		} else {
			seen[r.Target] = i
		}
		if len(r.Levels) == 0 {
			ps = append(ps, Problem{i, -1, -1, fmt.Sprintf("target %q has no levels", r.Target)})
		}
		for l, level := range r.Levels {
			if len(level) == 0 {
				ps = append(ps, Problem{i, l, -1, "empty level; a level lists the devices that must all succeed"})
			}
			inLevel := map[string]int{}
			for k, name := range level {
				d, ok := byName[name]
				switch {
				case !ok:
					ps = append(ps, Problem{i, l, k, fmt.Sprintf("unknown device %q", name)})
					continue
				case inLevel[name] > 0:
					ps = append(ps, Problem{i, l, k, fmt.Sprintf("device %q is already in this level", name)})
				}
				inLevel[name]++
				if r.Target != "" {
					if _, can := d.Port(r.Target); !can {
						ps = append(ps, Problem{i, l, k, fmt.Sprintf("device %q cannot fence %q (not in its hosts or host-map)", name, r.Target)})
					}
				}
			}
		}
	}
	return ps
}

// Table answers which levels fence a target. Build it with New from input
// that Check accepted.
type Table struct {
	devices []Device
	byName  map[string]int
	rules   map[string][][]string
}

// New builds a Table. It panics if Check reports problems: callers validate
// configuration first, so a problem here is a broken invariant.
func New(devices []Device, rules []Rule) *Table {
	if ps := Check(devices, rules); len(ps) > 0 {
		panic(fmt.Sprintf("topology: New called with unchecked rules: %v", ps[0]))
	}
	t := &Table{devices: devices, byName: map[string]int{}, rules: map[string][][]string{}}
	for i, d := range devices {
		t.byName[d.Name] = i
	}
	for _, r := range rules {
		t.rules[r.Target] = r.Levels
	}
	return t
}

// Levels returns the levels that fence target, in the order to try them, or
// nil if no device can fence it.
func (t *Table) Levels(target string) []Level {
	if names, ok := t.rules[target]; ok {
		out := make([]Level, 0, len(names))
		for _, level := range names {
			var l Level
			for _, name := range level {
				port, _ := t.devices[t.byName[name]].Port(target)
				l = append(l, Step{Device: name, Port: port})
			}
			out = append(out, l)
		}
		return out
	}
	var out []Level
	for _, d := range t.devices {
		if port, ok := d.Port(target); ok {
			out = append(out, Level{{Device: d.Name, Port: port}})
		}
	}
	return out
}

// Targets returns every node some device or rule can fence, sorted.
func (t *Table) Targets() []string {
	set := map[string]bool{}
	for _, d := range t.devices {
		for _, h := range d.Targets() {
			set[h] = true
		}
	}
	for h := range t.rules {
		set[h] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
