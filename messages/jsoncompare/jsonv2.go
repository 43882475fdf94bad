//go:build goexperiment.jsonv2

package jsoncompare

import (
	jsonv2 "encoding/json/v2"
)

func init() {
	Decoders = append(Decoders, Decoder{"encoding/json/v2", viaRawMaps(func(data []byte, v any) error { return jsonv2.Unmarshal(data, v) })})
	Encoders = append(Encoders, Encoder{"encoding/json/v2", viaMarshal(func(v any) ([]byte, error) { return jsonv2.Marshal(v, jsonv2.Deterministic(true)) })})
}
