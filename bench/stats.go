package bench

import (
	"encoding/json"
	"math"
	"slices"
)

// Spread is the median of repeated measurements and their range.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// N is how many measurements there were; zero means none, and then
	// the other fields are NaN (written as null in JSON).
	N int `json:"n"`
}

// NewSpread summarizes xs, ignoring NaNs. The median of an even count is
// the mean of the two middle values.
func NewSpread(xs []float64) Spread {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Spread{Median: med, Min: v[0], Max: v[n-1], N: n}
}

// Valid reports whether there was at least one measurement.
func (s Spread) Valid() bool { return s.N > 0 }

// MarshalJSON writes a Spread without measurements as {"n":0}, since JSON
// has no NaN.
func (s Spread) MarshalJSON() ([]byte, error) {
	if !s.Valid() {
		return []byte(`{"n":0}`), nil
	}
	type plain Spread
	return json.Marshal(plain(s))
}
