// Package config reads, validates and describes the gateway's YAML
// configuration.
//
// Load and Parse decode the file through a yaml.Node tree, so every
// problem carries a line, column and field path such as
// "routes[2].match.headers[0].regex". Unknown fields are errors, and all
// problems are reported at once as an ErrorList. Environment variables are
// expanded inside scalar values (${VAR}, ${VAR:-default}, $$ for a literal
// $); values read from the environment are hidden by Config.Redacted.
// After validation, ApplyDefaults fills every default documented on the
// types, so code using a parsed Config never sees an unset field.
//
// Warnings reports likely mistakes that do not stop a configuration from
// loading, such as routes that can never match. Service.Fingerprint lets a
// reload keep the pools of unchanged services.
//
// The file format is documented field by field in docs/configuration.md and
// described for editors by docs/schema/portico.schema.json.
package config
