// Package importer reads a configuration file in either format govs takes:
// govs YAML (through config.Parse) and keepalived.conf, which it maps onto
// the same model. docs/keepalived.md describes the mapping keyword by
// keyword.
//
// The mapping keeps every value's position in the keepalived file, so that
// Validate's errors point there, and warns about every option it cannot
// map. Its files follow keepalived's blocks:
//
//   - load.go: the entry points (Load for any format, Parse, Convert, Read).
//   - importer.go: the walk over the top-level blocks, messages.
//   - values.go: reading keepalived values (numbers, seconds, booleans,
//     addresses, scripts) and the one setter every option goes through.
//   - global.go: global_defs.
//   - virtual_server.go: virtual_server, virtual_server_group, real_server.
//   - checkers.go: the health checkers (TCP_CHECK, HTTP_GET, ...) and
//     track_file.
//   - vrrp.go: vrrp_script, vrrp_instance, vrrp_sync_group.
//   - utf8.go: the refusal of strings that are not UTF-8 text.
//
// It imports internal/config (the model) and internal/config/keepalived (the
// syntax). Package config must not import it: the importer sits above the
// model, which is why the entry point that chooses between the formats lives
// here and not in config (config.DetectFormat only tells them apart).
package importer
