package fencetest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// RedfishServer is a small Redfish service over HTTPS (httptest's TLS
// server on 127.0.0.1) with HTTP basic authentication. It serves:
//
//	GET  /redfish/v1                  ServiceRoot, linking Systems
//	GET  /redfish/v1/Systems          ComputerSystemCollection, one member per system
//	GET  /redfish/v1/Systems/{id}     ComputerSystem: Id, Name, PowerState,
//	                                  Actions.#ComputerSystem.Reset (target and
//	                                  ResetType@Redfish.AllowableValues)
//	POST /redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset
//	                                  {"ResetType": On | ForceOff | ForceRestart |
//	                                  GracefulShutdown}; 204 on success
//
// Any other path is 404, another method 405, a wrong login 401, a bad
// ResetType 400, each with a Redfish error body. That is the subset that
// fence_redfish and replicad's native agent use.
//
// Knobs (under the server's lock, through the methods): OffLag makes a
// system keep reporting "On" for that many GETs after ForceOff (a slow
// power-down); Hang makes every request block until the client gives up or
// Unhang is called; IgnoreOff makes ForceOff return success without
// changing the power (a lying BMC).
type RedfishServer struct {
	*httptest.Server
	// CAFile is the PEM certificate of the server, for ca-file.
	CAFile   string
	User     string
	Password string

	mu      sync.Mutex
	systems map[string]*rfSystem
	order   []string
	hang    chan struct{} // non-nil while hanging
	hanging int           // requests blocked by hang
	log     []string
}

type rfSystem struct {
	power     string
	offLag    int
	lagLeft   int
	ignoreOff bool
}

// NewRedfishServer starts a server with the given system ids (default
// "1"), all powered on, and writes its certificate to dir/redfish-ca.pem.
func NewRedfishServer(dir string, ids ...string) (*RedfishServer, error) {
	if len(ids) == 0 {
		ids = []string{"1"}
	}
	s := &RedfishServer{User: "root", Password: "calvin", systems: map[string]*rfSystem{}}
	for _, id := range ids {
		s.systems[id] = &rfSystem{power: "On"}
		s.order = append(s.order, id)
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	s.CAFile = filepath.Join(dir, "redfish-ca.pem")
	if err := os.WriteFile(s.CAFile, ca, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Host returns "127.0.0.1:port".
func (s *RedfishServer) Host() string { return strings.TrimPrefix(s.URL, "https://") }

// Port returns the TCP port the server listens on.
func (s *RedfishServer) Port() int { return s.Listener.Addr().(*net.TCPAddr).Port }

// Power returns a system's PowerState.
func (s *RedfishServer) Power(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.systems[id].power
}

// SetPower sets a system's PowerState.
func (s *RedfishServer) SetPower(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.systems[id].power = state
}

// SetOffLag makes the system report On for n GETs after each ForceOff.
func (s *RedfishServer) SetOffLag(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.systems[id].offLag = n
}

// SetIgnoreOff makes ForceOff succeed without powering off.
func (s *RedfishServer) SetIgnoreOff(id string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.systems[id].ignoreOff = v
}

// Hang makes requests block until Unhang or the client goes away.
func (s *RedfishServer) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// Unhang releases blocked requests.
func (s *RedfishServer) Unhang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Hanging returns how many requests are blocked by Hang right now.
func (s *RedfishServer) Hanging() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging
}

// Requests returns "METHOD PATH [ResetType]" for every authenticated
// request so far.
func (s *RedfishServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Close releases hanging requests and stops the server.
func (s *RedfishServer) Close() {
	s.Unhang()
	s.Server.Close()
}

func rfError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code":    "Base.1.8.GeneralError",
		"message": msg,
		"@Message.ExtendedInfo": []map[string]string{
			{"MessageId": "Base.1.8.GeneralError", "Message": msg},
		},
	}})
}

func rfJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	_ = json.NewEncoder(w).Encode(v)
}

const systemsPath = "/redfish/v1/Systems"

var resetTypes = []string{"On", "ForceOff", "ForceRestart", "GracefulShutdown"}

func (s *RedfishServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hang := s.hang
	if hang != nil {
		s.hanging++
	}
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.hanging--
		s.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	u, p, ok := r.BasicAuth()
	if !ok || u != s.User || p != s.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="redfish"`)
		rfError(w, http.StatusUnauthorized, "The authentication credentials included with this request are missing or invalid.")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	entry := r.Method + " " + path
	switch {
	case path == "/redfish/v1":
		if r.Method != http.MethodGet {
			rfError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		s.log = append(s.log, entry)
		rfJSON(w, map[string]any{
			"@odata.id": "/redfish/v1", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
			"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.6.0",
			"Systems": map[string]string{"@odata.id": systemsPath},
		})
	case path == systemsPath:
		if r.Method != http.MethodGet {
			rfError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		s.log = append(s.log, entry)
		var members []map[string]string
		for _, id := range s.order {
			members = append(members, map[string]string{"@odata.id": systemsPath + "/" + id})
		}
		rfJSON(w, map[string]any{
			"@odata.id": systemsPath, "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Name": "Computer System Collection", "Members": members, "Members@odata.count": len(members),
		})
	case strings.HasPrefix(path, systemsPath+"/"):
		rest := strings.TrimPrefix(path, systemsPath+"/")
		id, action, _ := strings.Cut(rest, "/")
		sys := s.systems[id]
		if sys == nil {
			rfError(w, http.StatusNotFound, fmt.Sprintf("The resource %s was not found.", path))
			return
		}
		switch {
		case action == "" && r.Method == http.MethodGet:
			s.log = append(s.log, entry)
			state := sys.power
			if sys.lagLeft > 0 {
				sys.lagLeft--
				state = "On"
			}
			rfJSON(w, map[string]any{
				"@odata.id": systemsPath + "/" + id, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
				"Id": id, "Name": "System " + id, "PowerState": state,
				"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
					"target":                            systemsPath + "/" + id + "/Actions/ComputerSystem.Reset",
					"ResetType@Redfish.AllowableValues": resetTypes,
				}},
			})
		case action == "Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
			var body struct{ ResetType string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				rfError(w, http.StatusBadRequest, "The request body is not valid JSON.")
				return
			}
			s.log = append(s.log, entry+" "+body.ResetType)
			switch body.ResetType {
			case "On":
				sys.power, sys.lagLeft = "On", 0
			case "ForceOff", "GracefulShutdown":
				if !sys.ignoreOff {
					sys.power, sys.lagLeft = "Off", sys.offLag
				}
			case "ForceRestart":
				sys.power = "On"
			default:
				rfError(w, http.StatusBadRequest, fmt.Sprintf("The value %q for the property ResetType is not in the list of acceptable values.", body.ResetType))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case action == "" || action == "Actions/ComputerSystem.Reset":
			rfError(w, http.StatusMethodNotAllowed, "method not allowed")
		default:
			rfError(w, http.StatusNotFound, fmt.Sprintf("The resource %s was not found.", path))
		}
	default:
		rfError(w, http.StatusNotFound, fmt.Sprintf("The resource %s was not found.", path))
	}
}
