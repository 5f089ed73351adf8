package upstream

// Tried is the set of endpoints a request was already sent to, so that a
// retry or a hedge goes elsewhere. The zero value is empty. Up to four
// endpoints are held without allocating.
type Tried struct {
	n    int
	arr  [4]*Endpoint
	more []*Endpoint
}

// Add records e.
func (t *Tried) Add(e *Endpoint) {
	if t.n < len(t.arr) {
		t.arr[t.n] = e
	} else {
		t.more = append(t.more, e)
	}
	t.n++
}

// Has reports whether e was recorded. A nil Tried holds nothing.
func (t *Tried) Has(e *Endpoint) bool {
	if t == nil {
		return false
	}
	for i := 0; i < t.n && i < len(t.arr); i++ {
		if t.arr[i] == e {
			return true
		}
	}
	for _, x := range t.more {
		if x == e {
			return true
		}
	}
	return false
}

// Len returns the number of endpoints recorded. A nil Tried holds nothing.
func (t *Tried) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Reset empties t.
func (t *Tried) Reset() {
	t.arr = [4]*Endpoint{}
	t.more = t.more[:0]
	t.n = 0
}
