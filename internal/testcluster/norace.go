//go:build !race

package testcluster

// RaceDetector reports whether the tests run under the race detector.
const RaceDetector = false
