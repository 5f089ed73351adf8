package bench

import (
	"encoding/json"
	"math"
	"testing"
)

func TestNewSpread(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want Spread
	}{
		{"odd", []float64{5, 1, 3}, Spread{Median: 3, Min: 1, Max: 5, N: 3}},
		{"even", []float64{4, 1, 3, 2}, Spread{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"one", []float64{7}, Spread{Median: 7, Min: 7, Max: 7, N: 1}},
		{"NaNs ignored", []float64{nan, 2, nan, 4}, Spread{Median: 3, Min: 2, Max: 4, N: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NewSpread(tc.in); got != tc.want {
				t.Errorf("NewSpread(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
	for _, in := range [][]float64{nil, {nan}} {
		if s := NewSpread(in); s.Valid() || !math.IsNaN(s.Median) {
			t.Errorf("NewSpread(%v) = %+v, want an invalid spread", in, s)
		}
	}
}

func TestSpreadJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]Spread{NewSpread([]float64{1, 2, 3}), NewSpread(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"median":2,"min":1,"max":3,"n":3},{"n":0}]`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}
