// The agent's configuration: defaults, the TOML file, command-line flags, and their validation.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "common/conninfo.hpp"
#include "common/duration.hpp"
#include "common/sha256.hpp"
#include "log/log_format.hpp"

namespace plugmon::agent {

/// One named API token of tokens_file: its secret is known only by its SHA-256 digest.
struct token_spec {
    std::string name;
    /// "read", "ack" and/or "admin" (admin implies ack, ack implies read).
    std::vector<std::string> scopes;
    sha256_digest sha256{};
};

/// One [[remote_write]] receiver (Prometheus remote write 1.0).
struct remote_write_spec {
    /// Unique among receivers ([A-Za-z0-9_.-]); the `remote` label of the self-metrics and the
    /// folder of its spool. Default: the URL's host_port.
    std::string name;
    std::string url;  ///< http://host[:port]/path or https://...
    /// https: CA certificates (PEM) that verify the receiver; empty: the system's CAs.
    std::string tls_ca_file;
    /// Request headers: `headers`, `header_files` (values read from files) and
    /// `bearer_token_file` (Authorization: Bearer ...). The reserved ones are refused.
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::nanoseconds timeout = std::chrono::seconds{30};  ///< per request
    std::uint64_t max_samples_per_send = 2000;
    /// Windows waiting for the sink (in memory), and the spool's cap on disk.
    std::uint32_t queue_windows = 64;
    std::uint64_t spool_max_bytes = 256ull << 20;
    /// Default: the parent of spool_dir, then remote_write/<name>.
    std::string spool_dir;
    bool native_histograms = true;
    /// Added to every series; `host` (the agent's host) is added unless given here.
    std::vector<std::pair<std::string, std::string>> external_labels;

    bool operator==(const remote_write_spec&) const = default;  ///< a reload's "changed?"
};

/// Everything the agent can be told. Each member is a TOML key of the same name and a flag
/// `--kebab-case` of it; flags override the file, the file overrides the defaults.
struct config {
    /// Where `agent.sock` lives; see default_runtime_dir().
    std::string runtime_dir;
    /// HTTP listener, "host:port" or "[v6]:port"; port 0 picks a free port.
    std::string listen = "127.0.0.1:9464";
    /// PostgreSQL connection string (URL or key=value form); empty means no store.
    std::string postgres;
    /// How often aggregates are flushed to the store.
    std::chrono::nanoseconds flush_interval = std::chrono::seconds{10};
    /// How long the drain loop sleeps when every lane was empty.
    std::chrono::nanoseconds drain_interval = std::chrono::milliseconds{1};
    /// At exit, how long to keep draining and flushing before giving up.
    std::chrono::nanoseconds exit_drain_timeout = std::chrono::seconds{5};
    spdlog::level::level_enum log_level = spdlog::level::info;
    /// Log lines as text or as one JSON object a line (log/log_format.hpp).
    log::format log_format = log::format::text;
    /// Producers (plugin processes) registered at once; more are refused.
    std::uint32_t max_producers = 1024;
    /// Permission bits of agent.sock (given as an octal string, e.g. "0660").
    std::uint32_t socket_mode = 0666;
    /// Histogram bucket upper bounds, in seconds: positive and strictly increasing.
    std::vector<double> query_buckets = default_buckets();
    std::vector<double> execution_buckets = default_buckets();
    /// The admin bearer token (scope admin, named "api_token" in the audit log); empty: none.
    std::string api_token;
    /// TOML file of named tokens (`[[token]] name, scopes, sha256`); refused when group or
    /// others have any access to it. Empty: none.
    std::string tokens_file;
    /// The tokens read from tokens_file (not a key; read again on every parse, i.e. reload).
    std::vector<token_spec> tokens;
    /// When true, the read routes (/metrics, /api/v1/...) need a token with scope read too.
    bool read_requires_token = false;
    /// Host header names accepted besides the loopback names and the listen address.
    std::vector<std::string> http_allowed_hosts;
    /// The built-in dashboard (GET /ui/ and /api/v1/ui/...); false: those routes answer 404.
    bool ui = true;
    /// The dashboard shows no action (ack, silences); the API itself is governed by tokens.
    bool ui_read_only = false;
    /// Live streams open at once; more get 503 and the page polls instead.
    std::uint32_t ui_max_streams = 32;
    /// How often the dashboard's snapshot is built and streamed.
    std::chrono::nanoseconds ui_interval = std::chrono::seconds{1};
    /// How much chart history the agent keeps, so a reloaded page starts full.
    std::chrono::nanoseconds ui_history = std::chrono::minutes{10};
    /// Live label sets across all plugins, and for any one plugin; beyond them events fold.
    std::uint64_t series_budget = 100000;
    std::uint64_t series_budget_per_plugin = 10000;
    /// A series with no events for this many flush windows is forgotten (0: never).
    std::uint32_t series_expiry_windows = 30;
    /// A query at least this long is a slow query (kept as a sample with its statement).
    std::chrono::nanoseconds slow_query_threshold = std::chrono::seconds{1};
    /// Per-plugin thresholds that override slow_query_threshold.
    std::vector<std::pair<std::string, std::chrono::nanoseconds>> slow_query_thresholds;
    /// Most recent slow-query samples kept (all plugins), and statements ranked per plugin.
    std::uint32_t slow_query_samples = 256;
    std::uint32_t top_statements = 20;
    /// Leak detection: live bytes (or RSS) growing steadily over this window by at least
    /// leak_min_growth bytes, with a linear fit of at least leak_min_r2.
    std::chrono::nanoseconds leak_window = std::chrono::minutes{10};
    std::uint64_t leak_min_growth = 1u << 20;
    double leak_min_r2 = 0.8;
    /// The host name written with every row (default: gethostname()).
    std::string host;
    /// Where batches wait for PostgreSQL: a write-ahead spool that survives agent restarts
    /// (default: see default_spool_dir()).
    std::string spool_dir;
    /// Spool size cap in bytes; beyond it the oldest batches are dropped and counted.
    std::uint64_t spool_max_bytes = 256ull << 20;
    /// PostgreSQL retention: partitions older than this are dropped.
    std::chrono::nanoseconds postgres_retention = std::chrono::hours{24 * 30};
    /// Rollups older than this are merged from flush windows into 1 h buckets.
    std::chrono::nanoseconds postgres_downsample_after = std::chrono::hours{48};
    /// Longest wait between reconnection attempts (exponential backoff with jitter up to it).
    std::chrono::nanoseconds postgres_backoff_max = std::chrono::seconds{30};
    /// Alert rules files: paths or glob(3) patterns (TOML: a string or an array of strings;
    /// flag: comma-separated). Empty: no alerting.
    std::vector<std::string> alert_rules;
    /// Where the alert engine keeps its state and notification outbox across restarts
    /// (default: see default_alert_state_dir()).
    std::string alert_state_dir;
    /// Prometheus remote write receivers (TOML `[[remote_write]]` tables; flag: one URL).
    std::vector<remote_write_spec> remote_write;
    /// The file the configuration was read from (empty: none). Not a key; set by --config.
    std::string config_file;
    /// The subcommand: "run" (the daemon), "migrate" (apply the schema and exit) or
    /// "check-rules" (validate alert rules files and exit 0 or 1). Not a key.
    std::string command = "run";
    /// check-rules FILE...: the files (or globs) to validate. Not a key.
    std::vector<std::string> check_files;
    /// migrate --dry-run: list the pending migrations, change nothing. Not a key.
    bool dry_run = false;

    /// 100 µs … 10 s, the usual latency spread of database queries.
    static std::vector<double> default_buckets();
    /// The slow-query threshold of one plugin.
    std::chrono::nanoseconds slow_threshold_for(std::string_view plugin) const;
};

/// Bad configuration. what() names the key (or the file) and the problem; the agent prints it
/// and exits with status 2.
class config_error : public std::runtime_error {
public:
    config_error(std::string key, const std::string& message);
    /// The key at fault ("config" for the file itself, "command line" for unparseable flags).
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;
};

/// --help or --version was given: print text() to stdout and exit with status 0.
class help_requested : public std::exception {
public:
    explicit help_requested(std::string text) : text_(std::move(text)) {}
    const std::string& text() const noexcept { return text_; }
    const char* what() const noexcept override { return text_.c_str(); }

private:
    std::string text_;
};

/// Parses `--config FILE` and the per-key flags into a validated config.
/// Throws config_error on any problem, help_requested for --help / --version. Reads the file
/// again on each call, so calling it again with the same arguments is a reload.
config parse_command_line(int argc, const char* const* argv);

/// The runtime directory the probe and the agent agree on, by the one rule both use
/// (plugmon::runtime_dir() in <plugmon/runtime_dir.hpp>): $PLUGMON_RUNTIME_DIR, else
/// /run/plugmon for root or when it exists and the user may create files in it, else
/// $XDG_RUNTIME_DIR/plugmon, else /tmp/plugmon-<euid>. Allocates; throws std::bad_alloc.
std::string default_runtime_dir();

/// The spool directory by default: $STATE_DIRECTORY/spool (systemd StateDirectory=), else
/// /var/lib/plugmon/spool for root, else $XDG_STATE_HOME/plugmon/spool, else
/// ~/.local/state/plugmon/spool.
std::string default_spool_dir();

/// The alert state directory by default: $STATE_DIRECTORY/alerts, else the parent of the
/// default spool directory plus /alerts (/var/lib/plugmon/alerts for root, else
/// $XDG_STATE_HOME/plugmon/alerts, else ~/.local/state/plugmon/alerts).
std::string default_alert_state_dir();

/// Splits and checks "host:port" / "[v6]:port"; the host comes back without brackets.
/// Throws config_error naming `listen`.
std::pair<std::string, std::uint16_t> split_listen(std::string_view listen);

/// The effective settings as (key, value) pairs, in key-table order; a key given more than once
/// (http_allowed_hosts, alert_rules, remote_write) appears once per value. Secrets are masked:
/// a changed token shows as "set" both times. A reload compares two of these.
std::vector<std::pair<std::string, std::string>> describe_values(const config& c);
/// One line summarising a config for the startup log: describe_values as key=value.
std::string describe(const config& c);

}  // namespace plugmon::agent
