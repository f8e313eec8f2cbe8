package engine

import (
	"reflect"
	"testing"
)

func TestPieces(t *testing.T) {
	cases := []struct {
		skip []Span
		want []Span
	}{
		{nil, []Span{{0, 100}}},
		{[]Span{{0, 100}}, nil},
		{[]Span{{10, 20}}, []Span{{0, 10}, {30, 70}}},
		{[]Span{{50, 10}, {10, 20}}, []Span{{0, 10}, {30, 20}, {60, 40}}},
		{[]Span{{10, 30}, {20, 5}}, []Span{{0, 10}, {40, 60}}},
		{[]Span{{90, 50}}, []Span{{0, 90}}},
	}
	for _, c := range cases {
		if got := Pieces(0, 100, c.skip); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Pieces(0, 100, %v) = %v, want %v", c.skip, got, c.want)
		}
	}
}
