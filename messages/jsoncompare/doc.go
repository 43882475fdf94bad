// Package jsoncompare measures JSON libraries on the work the worker's hot path does
// with nova's messages, on the captured wire vectors: reading a cast down to its
// instance's fields, and writing a notification. It is a module of its own, so that
// the libraries it compares are not dependencies of xcatbm; `make bench-json` runs
// it (json/v2 with GOEXPERIMENT=jsonv2). BENCHMARKS.md has its numbers.
package jsoncompare
