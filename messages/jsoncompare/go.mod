module xcatbm/messages/jsoncompare

go 1.26.0

require (
	github.com/goccy/go-json v0.10.5
	github.com/json-iterator/go v1.1.12
	github.com/segmentio/encoding v0.5.4
	xcatbm v0.0.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/modern-go/concurrent v0.0.0-20180228061459-e0a39a4cb421 // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/segmentio/asm v1.1.3 // indirect
	github.com/stretchr/testify v1.10.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace xcatbm => ../..
