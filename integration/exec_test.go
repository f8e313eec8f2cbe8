package integration

import "os/exec"

var execCommand = exec.Command
