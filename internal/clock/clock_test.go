package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	f := NewFake(time.Unix(1000, 0))
	late := f.NewTimer(3 * time.Second)
	early := f.NewTimer(1 * time.Second)
	f.Advance(2 * time.Second)
	select {
	case got := <-early.C():
		if want := time.Unix(1001, 0); !got.Equal(want) {
			t.Fatalf("early fired at %v, want %v", got, want)
		}
	default:
		t.Fatal("timer due at +1s did not fire after Advance(2s)")
	}
	select {
	case <-late.C():
		t.Fatal("timer due at +3s fired after Advance(2s)")
	default:
	}
	if !late.Stop() {
		t.Fatal("Stop on an armed timer reported inactive")
	}
	f.Advance(5 * time.Second)
	select {
	case <-late.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if got, want := f.Now(), time.Unix(1007, 0); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
}

func TestFakeAfterFunc(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	f.AfterFunc(time.Second, func() { close(done) })
	f.Advance(time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc did not run after its deadline passed")
	}
}
