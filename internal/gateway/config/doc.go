// Package config reads, validates and describes the gateway's YAML
// configuration. Every error names the file, line and field path it concerns.
package config
