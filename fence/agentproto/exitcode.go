package agentproto

import "fmt"

// Exit codes of fence-agents (lib/fencing.py EC_*).
const (
	ExitOK               = 0
	ExitGenericError     = 1
	ExitBadArgs          = 2
	ExitLoginDenied      = 3
	ExitConnectionLost   = 4
	ExitTimedOut         = 5
	ExitWaitingOn        = 6
	ExitWaitingOff       = 7
	ExitStatus           = 8
	ExitStatusHMC        = 9
	ExitPasswordMissing  = 10
	ExitInvalidPrivilege = 11
	ExitFetchVMUUID      = 12
)

// Exit codes of the status action.
const (
	StatusOn  = 0
	StatusOff = 2
)

var exitText = map[int]string{
	ExitOK:               "success",
	ExitGenericError:     "generic error",
	ExitBadArgs:          "bad arguments",
	ExitLoginDenied:      "login denied",
	ExitConnectionLost:   "connection lost",
	ExitTimedOut:         "timed out",
	ExitWaitingOn:        "timed out waiting for power on",
	ExitWaitingOff:       "timed out waiting for power off",
	ExitStatus:           "failed to read power status",
	ExitStatusHMC:        "failed to read status from HMC",
	ExitPasswordMissing:  "password missing",
	ExitInvalidPrivilege: "insufficient privileges",
	ExitFetchVMUUID:      "failed to fetch VM UUID",
}

// ExitText names an agent exit code for an action. For status, code 2 means
// "off", not bad arguments.
func ExitText(action string, code int) string {
	if action == ActionStatus && code == StatusOff {
		return "power is off"
	}
	if s, ok := exitText[code]; ok {
		return s
	}
	if code < 0 {
		return "killed by a signal"
	}
	return fmt.Sprintf("unknown exit code %d", code)
}
