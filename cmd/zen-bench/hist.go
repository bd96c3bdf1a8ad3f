package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the manner of HdrHistogram:
// 128 linear sub-buckets per power of two, so any recorded value is known
// to within 1%, in a fixed 35 KiB, with no allocation per record.
type hist struct {
	counts [35 * subBuckets]uint64
	n      uint64
	max    uint64
}

const subBuckets = 128

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 8 // v>>e is in [128, 256)
	return (e+1)*subBuckets + int(v>>e) - subBuckets
}

// lowest returns the smallest value of bucket i.
func lowest(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	e := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << e
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	i := bucketOf(v)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the records are.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			if i+1 < len(h.counts) {
				return time.Duration(min(lowest(i+1)-1, h.max)) // the bucket's highest value
			}
			return time.Duration(h.max)
		}
	}
	return time.Duration(h.max)
}
