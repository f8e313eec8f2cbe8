package lvs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/replicad/replicad/lvs/model"
)

// OwnedStore remembers which IPVS services replicad created.
type OwnedStore interface {
	Load() (map[model.Key]bool, error)
	Save(map[model.Key]bool) error
}

// NewMemoryOwnedStore keeps the record in memory (lost on restart).
func NewMemoryOwnedStore() OwnedStore { return &memOwned{m: map[model.Key]bool{}} }

type memOwned struct {
	mu sync.Mutex
	m  map[model.Key]bool
}

var _ OwnedStore = (*memOwned)(nil)

func (s *memOwned) Load() (map[model.Key]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[model.Key]bool, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *memOwned) Save(m map[model.Key]bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = make(map[model.Key]bool, len(m))
	for k, v := range m {
		s.m[k] = v
	}
	return nil
}

// NewFileOwnedStore keeps the record in a JSON file (written atomically:
// temporary file, fsync, rename).
func NewFileOwnedStore(path string) OwnedStore { return &fileOwned{path: path} }

type fileOwned struct {
	path string
}

var _ OwnedStore = (*fileOwned)(nil)

type ownedFile struct {
	Services []string  `json:"services"`
	Updated  time.Time `json:"updated"`
}

func (s *fileOwned) Load() (map[model.Key]bool, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[model.Key]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipvs state file: %w", err)
	}
	var f ownedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("ipvs state file %s: %w", s.path, err)
	}
	out := map[model.Key]bool{}
	for _, k := range f.Services {
		key, err := model.ParseKey(k)
		if err != nil {
			return nil, fmt.Errorf("ipvs state file %s: %w", s.path, err)
		}
		out[key] = true
	}
	return out, nil
}

func (s *fileOwned) Save(m map[model.Key]bool) error {
	var f ownedFile
	for k := range m {
		f.Services = append(f.Services, k.String())
	}
	slices.Sort(f.Services)
	f.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".lvs-owned-*")
	if err != nil {
		return fmt.Errorf("ipvs state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("ipvs state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ipvs state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ipvs state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("ipvs state file: %w", err)
	}
	return nil
}
