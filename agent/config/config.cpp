// Reads and validates the agent's configuration from a TOML file and command-line flags.
#include "config/config.hpp"
#include "common/diagnostics.hpp"

#include "common/version.hpp"

#include <plugmon/runtime_dir.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <system_error>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>

namespace plugmon::agent {

namespace {

using std::chrono::nanoseconds;

constexpr std::size_t max_config_bytes = 1 << 20;

/// Shortest text that reads back as the same double.
std::string format_number(double x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::general);
    return std::string(buf, r.ptr);
}

std::string kebab(std::string_view name) {
    std::string out(name);
    std::replace(out.begin(), out.end(), '_', '-');
    return out;
}

std::string location(const std::string& path, const toml::source_region& where) {
    return path + ":" + std::to_string(where.begin.line) + ":" +
           std::to_string(where.begin.column) + ": ";
}

/// One value for one key: a TOML node from the file, or the text of a flag.
struct value_in {
    std::string_view key;
    const toml::node* node = nullptr;  // null: the value came from a flag
    std::string_view text;             // the flag's text
    std::string where;                 // "file:line:col: " for file values, else empty

    [[noreturn]] void fail(const std::string& problem, std::string_view key_suffix = {}) const {
        throw config_error(std::string(key),
                           where + std::string(key) + std::string(key_suffix) + ": " + problem);
    }
};

std::string read_string(const value_in& v) {
    if (v.node == nullptr) return std::string(v.text);
    if (const auto* s = v.node->as_string()) return s->get();
    v.fail("expected a string, got " + toml_type_name(*v.node));
}

/// True when the whole of `text` is a number (used to explain a missing unit).
bool is_bare_number(std::string_view text) {
    double x = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), x);
    return !text.empty() && r.ec == std::errc{} && r.ptr == text.data() + text.size();
}

std::int64_t read_integer(const value_in& v, std::int64_t lo, std::int64_t hi) {
    std::int64_t x = 0;
    if (v.node != nullptr) {
        const auto* i = v.node->as_integer();
        if (i == nullptr) v.fail("expected an integer, got " + toml_type_name(*v.node));
        x = i->get();
    } else {
        const auto* end = v.text.data() + v.text.size();
        const auto r = std::from_chars(v.text.data(), end, x);
        if (v.text.empty() || r.ptr != end || r.ec == std::errc::invalid_argument)
            v.fail(agent::quoted(v.text) + " is not an integer");
        if (r.ec == std::errc::result_out_of_range)
            v.fail(agent::quoted(v.text) + " is out of range (" + std::to_string(lo) + ".." +
                   std::to_string(hi) + ")");
    }
    if (x < lo || x > hi)
        v.fail(std::to_string(x) + " is out of range (" + std::to_string(lo) + ".." +
               std::to_string(hi) + ")");
    return x;
}

nanoseconds read_duration(const value_in& v, nanoseconds lo, nanoseconds hi) {
    static const std::string no_unit =
        " has no unit: durations are strings such as \"10s\" or \"500ms\" (a bare number of "
        "milliseconds is not accepted)";
    std::string text;
    if (v.node != nullptr) {
        if (const auto* i = v.node->as_integer()) v.fail(std::to_string(i->get()) + no_unit);
        if (const auto* f = v.node->as_floating_point()) v.fail(format_number(f->get()) + no_unit);
        text = read_string(v);
    } else {
        text = std::string(v.text);
    }
    const auto d = parse_duration(text);
    if (!d) {
        if (is_bare_number(text)) v.fail(agent::quoted(text) + no_unit);
        v.fail(agent::quoted(text) + " is not a duration (use e.g. \"10s\", \"500ms\")");
    }
    if (*d < lo || *d > hi)
        v.fail(format_duration(*d) + " is out of range (" + format_duration(lo) + ".." +
               format_duration(hi) + ")");
    return *d;
}

double read_fraction(const value_in& v) {
    double x = 0;
    if (v.node != nullptr) {
        if (const auto* i = v.node->as_integer()) {
            x = static_cast<double>(i->get());
        } else if (const auto* f = v.node->as_floating_point()) {
            x = f->get();
        } else {
            v.fail("expected a number between 0 and 1, got " + toml_type_name(*v.node));
        }
    } else {
        const auto* end = v.text.data() + v.text.size();
        const auto r = std::from_chars(v.text.data(), end, x);
        if (v.text.empty() || r.ptr != end || r.ec != std::errc{})
            v.fail(agent::quoted(v.text) + " is not a number");
    }
    if (!(x >= 0.0 && x <= 1.0)) v.fail(format_number(x) + " is out of range (0..1)");
    return x;
}

/// "plugin=DURATION,..." from a flag, or a TOML table { plugin = "DURATION" }.
std::vector<std::pair<std::string, nanoseconds>> read_thresholds(const value_in& v) {
    std::vector<std::pair<std::string, nanoseconds>> out;
    const auto one = [&](std::string_view plugin, std::string_view text, const toml::node* node) {
        if (plugin.empty()) v.fail("a plugin name is empty");
        // errors name the entry: "slow_query_thresholds.billing: ..."
        const std::string key = std::string(v.key) + "." + std::string(plugin);
        const value_in item{key, node, text, v.where};
        out.emplace_back(std::string(plugin),
                         read_duration(item, std::chrono::microseconds{1}, std::chrono::hours{1}));
    };
    if (v.node != nullptr) {
        const auto* table = v.node->as_table();
        if (table == nullptr)
            v.fail("expected a table of plugin = \"DURATION\", got " + toml_type_name(*v.node));
        for (const auto& [k, node] : *table) one(k.str(), {}, &node);
        return out;
    }
    std::string_view rest = v.text;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) v.fail(agent::quoted(item) + " is not PLUGIN=DURATION");
        one(item.substr(0, eq), item.substr(eq + 1), nullptr);
    }
    return out;
}

std::vector<double> read_buckets(const value_in& v) {
    std::vector<double> out;
    if (v.node != nullptr) {
        const auto* arr = v.node->as_array();
        if (arr == nullptr)
            v.fail("expected an array of bucket bounds in seconds, got " + toml_type_name(*v.node));
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const toml::node& e = *arr->get(i);
            if (const auto* n = e.as_integer()) {
                out.push_back(static_cast<double>(n->get()));
            } else if (const auto* f = e.as_floating_point()) {
                out.push_back(f->get());
            } else {
                v.fail("expected a number of seconds, got " + toml_type_name(e),
                       "[" + std::to_string(i) + "]");
            }
        }
    } else {
        std::string_view rest = v.text;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
            while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
            double x = 0;
            const auto r = std::from_chars(item.data(), item.data() + item.size(), x);
            if (item.empty() || r.ec != std::errc{} || r.ptr != item.data() + item.size())
                v.fail(agent::quoted(item) +
                       " is not a number of seconds (give a comma-separated list, "
                       "e.g. \"0.001,0.01,0.1\")");
            out.push_back(x);
        }
    }
    if (out.empty()) v.fail("must list at least one bucket bound");
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!std::isfinite(out[i]) || out[i] <= 0)
            v.fail(format_number(out[i]) + " is not a positive number of seconds");
        if (i > 0 && out[i] <= out[i - 1])
            v.fail(format_number(out[i]) + " does not follow " + format_number(out[i - 1]) +
                   " (bounds must be strictly increasing)");
    }
    return out;
}

std::string check_runtime_dir(const value_in& v, std::string dir) {
    // agent.sock must fit in sockaddr_un::sun_path, NUL included.
    constexpr std::size_t max_dir = sizeof(sockaddr_un{}.sun_path) - 1 - sizeof("/agent.sock") + 1;
    if (dir.empty() || dir.front() != '/') v.fail(agent::quoted(dir) + " is not an absolute path");
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (dir.size() > max_dir)
        v.fail("path is " + std::to_string(dir.size()) +
               " bytes; a Unix socket path allows at most " + std::to_string(max_dir) + " here");
    return dir;
}

std::optional<std::pair<std::string, std::uint16_t>> try_split_listen(std::string_view s,
                                                                      std::string& problem) {
    std::string_view host;
    std::string_view port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) {
            problem = "has an unclosed '['";
            return std::nullopt;
        }
        host = s.substr(1, close - 1);
        const auto rest = s.substr(close + 1);
        if (rest.empty() || rest.front() != ':') {
            problem = "needs a port after ']' (e.g. \"[::1]:9464\")";
            return std::nullopt;
        }
        port = rest.substr(1);
        in6_addr addr{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) {
            problem = "has no valid IPv6 address between the brackets";
            return std::nullopt;
        }
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) {
            problem = "is not host:port (e.g. \"127.0.0.1:9464\" or \"[::1]:9464\")";
            return std::nullopt;
        }
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            problem = "looks like an IPv6 address: put it in brackets (e.g. \"[::1]:9464\")";
            return std::nullopt;
        }
        if (host.empty()) {
            problem = "has no host (use \"0.0.0.0:PORT\" to listen on all interfaces)";
            return std::nullopt;
        }
        const bool valid_host =
            host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-';
            });
        if (!valid_host) {
            problem = "has an invalid host name";
            return std::nullopt;
        }
    }
    unsigned value = 0;
    const auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || r.ec != std::errc{} || r.ptr != port.data() + port.size() ||
        value > 65535 || port.front() == '+') {
        problem = "has an invalid port (want 0..65535; 0 picks a free port)";
        return std::nullopt;
    }
    return std::pair{std::string(host), static_cast<std::uint16_t>(value)};
}

bool read_bool(const value_in& v) {
    if (v.node != nullptr) {
        if (const auto* b = v.node->as_boolean()) return b->get();
        v.fail("expected true or false, got " + toml_type_name(*v.node));
    }
    if (v.text == "true") return true;
    if (v.text == "false") return false;
    v.fail(agent::quoted(v.text) + " is not true or false");
}

/// A host name or IP address as a Host header carries it (without the port), lowercased; an
/// IPv6 address may come in brackets.
std::string read_host_name(const value_in& v, std::string text, std::string_view suffix) {
    if (text.size() > 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);
    std::transform(text.begin(), text.end(), text.begin(),
                   [](char ch) { return char(std::tolower(static_cast<unsigned char>(ch))); });
    in6_addr addr{};
    if (inet_pton(AF_INET6, text.c_str(), &addr) == 1) return text;
    const bool valid =
        !text.empty() && text.size() <= 253 && std::all_of(text.begin(), text.end(), [](char ch) {
            return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
                   ch == '_';
        });
    if (!valid)
        v.fail(agent::quoted(text) + " is not a host name (letters, digits, '.', '-'; no port)",
               suffix);
    return text;
}

/// `http_allowed_hosts`: a TOML array of strings, or a comma-separated flag.
std::vector<std::string> read_host_list(const value_in& v) {
    std::vector<std::string> out;
    if (v.node != nullptr) {
        const auto* arr = v.node->as_array();
        if (arr == nullptr)
            v.fail("expected an array of host names, got " + toml_type_name(*v.node));
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const std::string suffix = "[" + std::to_string(i) + "]";
            const auto* s = arr->get(i)->as_string();
            if (s == nullptr)
                v.fail("expected a host name string, got " + toml_type_name(*arr->get(i)), suffix);
            out.push_back(read_host_name(v, s->get(), suffix));
        }
        return out;
    }
    std::string_view rest = v.text;
    for (std::size_t i = 0; !rest.empty(); ++i) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        out.push_back(read_host_name(v, std::string(item), "[" + std::to_string(i) + "]"));
    }
    return out;
}

/// `alert_rules`: a TOML string or array of strings, or a comma-separated flag; each a file or a
/// glob, not empty.
std::vector<std::string> read_path_list(const value_in& v) {
    std::vector<std::string> out;
    if (v.node != nullptr && v.node->is_array()) {
        const auto* arr = v.node->as_array();
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const auto* s = arr->get(i)->as_string();
            if (s == nullptr)
                v.fail("expected a file name or glob, got " + toml_type_name(*arr->get(i)),
                       "[" + std::to_string(i) + "]");
            if (s->get().empty()) v.fail("is empty", "[" + std::to_string(i) + "]");
            out.push_back(s->get());
        }
        return out;
    }
    if (v.node != nullptr && !v.node->is_string())
        v.fail("expected a file name, a glob or an array of them, got " + toml_type_name(*v.node));
    const std::string text = read_string(v);
    if (v.node != nullptr) {
        if (!text.empty()) out.push_back(text);
        return out;
    }
    std::string_view rest = text;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (item.empty()) v.fail("has an empty entry");
        out.emplace_back(item);
    }
    return out;
}

constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 6> log_levels{{
    {"trace", spdlog::level::trace},
    {"debug", spdlog::level::debug},
    {"info", spdlog::level::info},
    {"warn", spdlog::level::warn},
    {"error", spdlog::level::err},
    {"off", spdlog::level::off},
}};

std::string_view log_level_name(spdlog::level::level_enum level) {
    for (const auto& [name, value] : log_levels)
        if (value == level) return name;
    return "info";
}

/// A configuration key: its name, what --help says about it, and how to apply a value.
struct key_spec {
    std::string_view name;
    std::string_view value_name;
    std::string_view help;
    void (*apply)(config&, const value_in&);
};

std::vector<remote_write_spec> read_remote_write(const value_in& v);

const key_spec keys[] = {
    {"runtime_dir", "DIR",
     "directory of agent.sock (default $PLUGMON_RUNTIME_DIR, else /run/plugmon for root, else "
     "$XDG_RUNTIME_DIR/plugmon, else /tmp/plugmon-<uid>)",
     [](config& c, const value_in& v) { c.runtime_dir = check_runtime_dir(v, read_string(v)); }},
    {"listen", "HOST:PORT",
     "HTTP listener, e.g. 127.0.0.1:9464 or [::1]:9464; port 0 picks one "
     "(default 127.0.0.1:9464)",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         std::string problem;
         if (!try_split_listen(s, problem)) v.fail(agent::quoted(s) + " " + problem);
         c.listen = std::move(s);
     }},
    {"postgres", "CONNINFO",
     "PostgreSQL URL (postgresql://user@host/db) or key=value string; empty: no store",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         const bool url = s.starts_with("postgresql://") || s.starts_with("postgres://");
         if (!s.empty() && !url && s.find('=') == std::string::npos)
             v.fail(
                 "is neither a postgresql:// URL nor a key=value connection string (value not "
                 "shown: it may hold a password)");
         c.postgres = std::move(s);
     }},
    {"flush_interval", "DURATION", "how often aggregates go to PostgreSQL, e.g. 10s (default 10s)",
     [](config& c, const value_in& v) {
         c.flush_interval =
             read_duration(v, std::chrono::milliseconds{100}, std::chrono::hours{24});
     }},
    {"drain_interval", "DURATION", "idle poll period of the drain loop, e.g. 1ms (default 1ms)",
     [](config& c, const value_in& v) {
         c.drain_interval = read_duration(v, std::chrono::microseconds{1}, std::chrono::seconds{1});
     }},
    {"exit_drain_timeout", "DURATION", "at exit, how long to drain and flush (default 5s)",
     [](config& c, const value_in& v) {
         c.exit_drain_timeout = read_duration(v, nanoseconds{0}, std::chrono::minutes{10});
     }},
    {"log_level", "LEVEL", "trace, debug, info, warn, error or off (default info)",
     [](config& c, const value_in& v) {
         const auto s = read_string(v);
         for (const auto& [name, level] : log_levels) {
             if (s == name) {
                 c.log_level = level;
                 return;
             }
         }
         v.fail(agent::quoted(s) + " is not one of trace, debug, info, warn, error, off");
     }},
    {"log_format", "FORMAT",
     "text, or json: one JSON object a line for Loki or Elasticsearch (default text)",
     [](config& c, const value_in& v) {
         const auto s = read_string(v);
         const auto f = log::parse_format(s);
         if (!f) v.fail(agent::quoted(s) + " is not one of text, json");
         c.log_format = *f;
     }},
    {"max_producers", "N", "plugin processes registered at once, 1..65536 (default 1024)",
     [](config& c, const value_in& v) {
         c.max_producers = static_cast<std::uint32_t>(read_integer(v, 1, 65536));
     }},
    {"socket_mode", "MODE", "permissions of agent.sock as octal, e.g. 0660 (default 0666)",
     [](config& c, const value_in& v) {
         if (v.node != nullptr && !v.node->is_string())
             v.fail("expected a string of octal digits such as \"0660\", got " +
                    toml_type_name(*v.node));
         const auto s = read_string(v);
         unsigned mode = 0;
         const auto r = std::from_chars(s.data(), s.data() + s.size(), mode, 8);
         if (s.size() < 3 || s.size() > 4 || r.ec != std::errc{} || r.ptr != s.data() + s.size() ||
             mode > 0777)
             v.fail(agent::quoted(s) + " is not an octal permission mode (e.g. \"0660\")");
         c.socket_mode = mode;
     }},
    {"query_buckets", "SECONDS,...",
     "query duration histogram bounds in seconds, strictly increasing (default 0.0001..10)",
     [](config& c, const value_in& v) { c.query_buckets = read_buckets(v); }},
    {"execution_buckets", "SECONDS,...",
     "execution duration histogram bounds in seconds, strictly increasing (default 0.0001..10)",
     [](config& c, const value_in& v) { c.execution_buckets = read_buckets(v); }},
    {"api_token", "TOKEN",
     "the admin bearer token (scope admin, audited as \"api_token\"); empty: none (prefer the "
     "config file: flags are visible to other users)",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         const bool clean = std::none_of(s.begin(), s.end(), [](char ch) {
             return static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f;
         });
         if (!clean) v.fail("must not contain spaces or control characters (value not shown)");
         c.api_token = std::move(s);
     }},
    {"tokens_file", "FILE",
     "TOML file of named API tokens: [[token]] name, scopes (read, ack, admin), sha256 (hex "
     "digest of the secret, e.g. printf %s SECRET | sha256sum); must be mode 0600 or stricter",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         if (s.empty()) v.fail("is empty");
         c.tokens_file = std::move(s);
     }},
    {"read_requires_token", "BOOL",
     "true: /metrics and /api/v1 reads need a token with scope read (default false)",
     [](config& c, const value_in& v) { c.read_requires_token = read_bool(v); }},
    {"ui", "BOOL", "the built-in dashboard at /ui/ (default true; false: its routes answer 404)",
     [](config& c, const value_in& v) { c.ui = read_bool(v); }},
    {"ui_read_only", "BOOL",
     "true: the dashboard shows figures only, no ack or silence actions (default false)",
     [](config& c, const value_in& v) { c.ui_read_only = read_bool(v); }},
    {"ui_max_streams", "N",
     "dashboard live streams open at once, 1..1024; more get 503 and poll (default 32)",
     [](config& c, const value_in& v) {
         c.ui_max_streams = static_cast<std::uint32_t>(read_integer(v, 1, 1024));
     }},
    {"ui_interval", "DURATION", "dashboard update period, 250ms..10s (default 1s)",
     [](config& c, const value_in& v) {
         c.ui_interval = read_duration(v, std::chrono::milliseconds{250}, std::chrono::seconds{10});
     }},
    {"ui_history", "DURATION", "chart history kept for the dashboard, 1m..1h (default 10m)",
     [](config& c, const value_in& v) {
         c.ui_history = read_duration(v, std::chrono::minutes{1}, std::chrono::hours{1});
     }},
    {"http_allowed_hosts", "HOST,...",
     "Host header names accepted besides loopback names and the listen address "
     "(TOML: an array; others get 421)",
     [](config& c, const value_in& v) { c.http_allowed_hosts = read_host_list(v); }},
    {"series_budget", "N", "live label sets across all plugins, 1..100000000 (default 100000)",
     [](config& c, const value_in& v) {
         c.series_budget = static_cast<std::uint64_t>(read_integer(v, 1, 100'000'000));
     }},
    {"series_budget_per_plugin", "N",
     "live label sets for any one plugin, 1..series_budget (default 10000)",
     [](config& c, const value_in& v) {
         c.series_budget_per_plugin = static_cast<std::uint64_t>(read_integer(v, 1, 100'000'000));
     }},
    {"series_expiry_windows", "N",
     "forget a series after N flush windows without events, 0 = never (default 30)",
     [](config& c, const value_in& v) {
         c.series_expiry_windows = static_cast<std::uint32_t>(read_integer(v, 0, 1'000'000));
     }},
    {"slow_query_threshold", "DURATION", "a query at least this long is slow (default 1s)",
     [](config& c, const value_in& v) {
         c.slow_query_threshold =
             read_duration(v, std::chrono::microseconds{1}, std::chrono::hours{1});
     }},
    {"slow_query_thresholds", "PLUGIN=DURATION,...",
     "per-plugin slow-query thresholds, e.g. billing=200ms,search=2s (TOML: a table)",
     [](config& c, const value_in& v) { c.slow_query_thresholds = read_thresholds(v); }},
    {"slow_query_samples", "N", "most recent slow queries kept, 1..100000 (default 256)",
     [](config& c, const value_in& v) {
         c.slow_query_samples = static_cast<std::uint32_t>(read_integer(v, 1, 100'000));
     }},
    {"top_statements", "N", "statements ranked per plugin by total time, 1..10000 (default 20)",
     [](config& c, const value_in& v) {
         c.top_statements = static_cast<std::uint32_t>(read_integer(v, 1, 10'000));
     }},
    {"leak_window", "DURATION",
     "leak detection looks for steady growth over this window, e.g. 10m (default 10m)",
     [](config& c, const value_in& v) {
         c.leak_window = read_duration(v, std::chrono::seconds{5}, std::chrono::hours{24 * 7});
     }},
    {"leak_min_growth", "BYTES", "growth over leak_window that counts as a leak (default 1048576)",
     [](config& c, const value_in& v) {
         c.leak_min_growth = static_cast<std::uint64_t>(read_integer(v, 1, std::int64_t(1) << 50));
     }},
    {"leak_min_r2", "R2", "how straight the growth must be: linear fit R^2, 0..1 (default 0.8)",
     [](config& c, const value_in& v) { c.leak_min_r2 = read_fraction(v); }},
    {"host", "NAME", "host name written with every stored row (default: this machine's hostname)",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         if (s.empty() || s.size() > 255) v.fail("must be 1..255 bytes long");
         c.host = std::move(s);
     }},
    {"spool_dir", "DIR",
     "where batches wait for PostgreSQL, kept across restarts (default $STATE_DIRECTORY/spool, "
     "else /var/lib/plugmon/spool for root, else ~/.local/state/plugmon/spool)",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         if (s.empty()) v.fail("is empty");
         c.spool_dir = std::move(s);
     }},
    {"spool_max_bytes", "SIZE",
     "spool size cap, e.g. 256MiB; beyond it the oldest batches are dropped and counted "
     "(default 256MiB)",
     [](config& c, const value_in& v) {
         std::optional<std::uint64_t> n;
         if (v.node != nullptr && v.node->as_integer() != nullptr) {
             const auto i = v.node->as_integer()->get();
             if (i >= 0) n = std::uint64_t(i);
         } else {
             n = parse_size(read_string(v));
         }
         if (!n) v.fail("is not a size (use e.g. \"256MiB\", \"1GiB\" or a number of bytes)");
         if (*n < (1u << 20) || *n > (1ull << 40))
             v.fail(std::to_string(*n) + " is out of range (1MiB..1TiB)");
         c.spool_max_bytes = *n;
     }},
    {"postgres_retention", "DURATION",
     "stored rows older than this are dropped, a whole partition at a time (default 30d)",
     [](config& c, const value_in& v) {
         c.postgres_retention =
             read_duration(v, std::chrono::hours{24}, std::chrono::hours{24 * 3660});
     }},
    {"postgres_downsample_after", "DURATION",
     "rollups older than this are merged into 1 h buckets (default 2d)",
     [](config& c, const value_in& v) {
         c.postgres_downsample_after =
             read_duration(v, std::chrono::hours{24}, std::chrono::hours{24 * 3660});
     }},
    {"alert_rules", "FILE,...",
     "alert rules files or globs, e.g. /etc/plugmon/alerts.d/*.toml (TOML: a string or an "
     "array); empty: no alerting. Check them with: plugmon-agent check-rules FILE...",
     [](config& c, const value_in& v) { c.alert_rules = read_path_list(v); }},
    {"alert_state_dir", "DIR",
     "where alert state and the notification outbox are kept across restarts (default "
     "$STATE_DIRECTORY/alerts, else /var/lib/plugmon/alerts for root, else "
     "~/.local/state/plugmon/alerts)",
     [](config& c, const value_in& v) {
         auto s = read_string(v);
         if (s.empty()) v.fail("is empty");
         c.alert_state_dir = std::move(s);
     }},
    {"postgres_backoff_max", "DURATION",
     "longest wait between reconnection attempts to PostgreSQL (default 30s)",
     [](config& c, const value_in& v) {
         c.postgres_backoff_max =
             read_duration(v, std::chrono::milliseconds{100}, std::chrono::hours{1});
     }},
    {"remote_write", "URL",
     "Prometheus remote write receiver, e.g. http://prometheus:9090/api/v1/write (TOML: "
     "[[remote_write]] tables with url, name, tls_ca_file, headers, header_files, "
     "bearer_token_file, "
     "timeout, max_samples_per_send, queue_windows, spool_max_bytes, spool_dir, "
     "native_histograms, external_labels)",
     [](config& c, const value_in& v) { c.remote_write = read_remote_write(v); }},
};

const key_spec* find_key(std::string_view name) {
    for (const auto& k : keys)
        if (k.name == name) return &k;
    return nullptr;
}

/// The known key nearest to `name`, when it is at most two edits away.
std::optional<std::string_view> closest_key(std::string_view name) {
    return closest_name(name, keys, [](const key_spec& k) { return std::string_view(k.name); });
}

/// The whole of a small file; errors name `key` ("config", "tokens_file"). `mode` receives the
/// file's permission bits when given.
std::string read_file(const std::string& path, const std::string& key = "config",
                      unsigned* mode = nullptr) {
    const auto cannot = [&](int err) {
        return config_error(key, key + ": cannot read " + agent::quoted(path) + ": " +
                                     std::generic_category().message(err));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw cannot(errno);
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw cannot(errno);
    if (S_ISDIR(st.st_mode)) throw cannot(EISDIR);
    if (mode != nullptr) *mode = static_cast<unsigned>(st.st_mode & 07777);
    std::string text;
    char buf[16384];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw cannot(errno);
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_config_bytes)
            throw config_error(key, key + ": " + agent::quoted(path) + " is larger than 1 MiB");
    }
    return text;
}

/// "file:line:col: " of a node inside the configuration file.
std::string where_of(const toml::node& node) {
    const auto& src = node.source();
    return src.path ? location(*src.path, src) : std::string{};
}

/// A secret read from a file that group and others cannot access (as for tokens_file); one
/// trailing newline is removed.
std::string read_secret_file(const value_in& v, const std::string& path) {
    unsigned mode = 0;
    std::string text = read_file(path, std::string(v.key), &mode);
    if ((mode & 077) != 0) {
        char octal[8];
        std::snprintf(octal, sizeof octal, "%04o", mode & 07777u);
        v.fail(agent::quoted(path) + " is accessible by group or others (mode " + octal +
               "); chmod 600 it");
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty() || text.find_first_of("\r\n") != std::string::npos)
        v.fail(agent::quoted(path) + " must hold one non-empty line");
    return text;
}

bool is_header_name(std::string_view n) {
    if (n.empty()) return false;
    for (const char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    return true;
}

/// name -> string values of a TOML table (headers, header_files, external_labels).
std::vector<std::pair<std::string, std::string>> read_string_table(const value_in& v) {
    const auto* t = v.node->as_table();
    if (t == nullptr)
        v.fail("expected a table of name = \"value\", got " + toml_type_name(*v.node));
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, node] : *t) {
        const std::string key = std::string(v.key) + "." + std::string(k.str());
        out.emplace_back(std::string(k.str()),
                         read_string(value_in{key, &node, {}, where_of(node)}));
    }
    return out;
}

void add_header(const value_in& v, remote_write_spec& r, std::string name, std::string value) {
    static const char* const reserved[] = {"content-encoding",
                                           "content-type",
                                           "user-agent",
                                           "x-prometheus-remote-write-version",
                                           "host",
                                           "content-length",
                                           "connection"};
    std::string low = name;
    for (auto& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!is_header_name(name)) v.fail(agent::quoted(name) + " is not a header name");
    for (const char* n : reserved)
        if (low == n)
            v.fail(agent::quoted(name) + " is reserved by the protocol and cannot be set");
    for (const auto& [have, _] : r.headers) {
        std::string h = have;
        for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (h == low) v.fail(agent::quoted(name) + " is given twice");
    }
    if (value.find_first_of("\r\n") != std::string::npos || value.empty())
        v.fail("the value of " + agent::quoted(name) + " is empty or spans lines");
    r.headers.emplace_back(std::move(name), std::move(value));
}

void check_remote_url(const value_in& v, const std::string& url) {
    std::string low = url.substr(0, 8);
    for (auto& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool tls = low == "https://";
    if ((!tls && low.rfind("http://", 0) != 0) || url.size() <= (tls ? 8u : 7u))
        v.fail(agent::quoted(url) + " is not an http:// or https:// URL");
}

void check_label_name(const value_in& v, const std::string& n) {
    static const char* const taken[] = {"plugin", "op", "table", "tenant", "status", "le"};
    bool ok =
        !n.empty() && !std::isdigit(static_cast<unsigned char>(n[0])) && n.rfind("__", 0) != 0;
    for (const char c : n) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!ok) v.fail(agent::quoted(n) + " is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, no __)");
    for (const char* t : taken)
        if (n == t) v.fail(agent::quoted(n) + " is a label of plugmon's own series");
}

/// One key of one [[remote_write]] table.
void apply_remote_key(remote_write_spec& r, const value_in& v) {
    const std::string_view k = v.key.substr(v.key.rfind('.') + 1);
    if (k == "url") {
        r.url = read_string(v);
        check_remote_url(v, r.url);
    } else if (k == "name") {
        r.name = read_string(v);
        bool ok = !r.name.empty() && r.name.size() <= 64 && r.name[0] != '.';
        for (const char c : r.name)
            ok = ok &&
                 (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
        if (!ok) v.fail(agent::quoted(r.name) + " is not a name (1..64 of [A-Za-z0-9_.-])");
    } else if (k == "headers") {
        for (auto& [n, val] : read_string_table(v)) add_header(v, r, n, val);
    } else if (k == "header_files") {
        for (auto& [n, path] : read_string_table(v)) add_header(v, r, n, read_secret_file(v, path));
    } else if (k == "bearer_token_file") {
        add_header(v, r, "Authorization", "Bearer " + read_secret_file(v, read_string(v)));
    } else if (k == "tls_ca_file") {
        r.tls_ca_file = read_string(v);
        if (::access(r.tls_ca_file.c_str(), R_OK) != 0)
            v.fail(agent::quoted(r.tls_ca_file) + " cannot be read");
    } else if (k == "timeout") {
        r.timeout = read_duration(v, std::chrono::milliseconds{100}, std::chrono::minutes{5});
    } else if (k == "max_samples_per_send") {
        r.max_samples_per_send = std::uint64_t(read_integer(v, 1, 1000000));
    } else if (k == "queue_windows") {
        r.queue_windows = std::uint32_t(read_integer(v, 1, 100000));
    } else if (k == "spool_max_bytes") {
        const auto n =
            v.node->as_integer()
                ? std::optional<std::uint64_t>(read_integer(v, 1 << 20, std::int64_t(1) << 40))
                : parse_size(read_string(v));
        if (!n || *n < (1u << 20) || *n > (1ull << 40))
            v.fail("is not a size from 1MiB to 1TiB (e.g. \"256MiB\")");
        r.spool_max_bytes = *n;
    } else if (k == "spool_dir") {
        r.spool_dir = read_string(v);
        if (r.spool_dir.empty()) v.fail("is empty");
    } else if (k == "native_histograms") {
        r.native_histograms = read_bool(v);
    } else if (k == "external_labels") {
        for (auto& [n, val] : read_string_table(v)) {
            check_label_name(v, n);
            if (val.empty()) v.fail("the value of " + agent::quoted(n) + " is empty");
            r.external_labels.emplace_back(std::move(n), std::move(val));
        }
    } else {
        v.fail(
            "unknown key (known: url, name, tls_ca_file, headers, header_files, "
            "bearer_token_file, timeout, max_samples_per_send, queue_windows, spool_max_bytes, "
            "spool_dir, native_histograms, external_labels)");
    }
}

/// `[[remote_write]]` tables from the file, or one URL from --remote-write.
std::vector<remote_write_spec> read_remote_write(const value_in& v) {
    std::vector<remote_write_spec> out;
    if (v.node == nullptr) {
        out.emplace_back().url = std::string(v.text);
        check_remote_url(v, out.back().url);
        return out;
    }
    const auto* arr = v.node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables())
        v.fail("expected [[remote_write]] tables, got " + toml_type_name(*v.node));
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto& t = *arr->get(i)->as_table();
        remote_write_spec r;
        const std::string base = std::string(v.key) + "[" + std::to_string(i) + "]";
        for (const auto& [k, node] : t)
            apply_remote_key(
                r, value_in{base + "." + std::string(k.str()), &node, {}, where_of(node)});
        if (r.url.empty()) value_in{base, &t, {}, where_of(t)}.fail("url is missing");
        out.push_back(std::move(r));
    }
    return out;
}

/// Default names and spool folders once every key is known; names must be unique.
void finish_remote_write(config& c) {
    const std::string parent = c.spool_dir.substr(0, c.spool_dir.find_last_of('/'));
    for (std::size_t i = 0; i < c.remote_write.size(); ++i) {
        auto& r = c.remote_write[i];
        if (r.name.empty()) {
            const std::size_t from = r.url.find("://") + 3;
            std::string authority = r.url.substr(from, r.url.find('/', from) - from);
            for (auto& ch : authority)
                if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.'))
                    ch = '_';
            r.name = authority;
        }
        for (std::size_t j = 0; j < i; ++j)
            if (c.remote_write[j].name == r.name)
                throw config_error("remote_write", "remote_write[" + std::to_string(i) +
                                                       "].name: " + agent::quoted(r.name) +
                                                       " is used twice; give each a name");
        if (r.spool_dir.empty())
            r.spool_dir = (parent.empty() ? std::string(".") : parent) + "/remote_write/" + r.name;
        if (std::none_of(r.external_labels.begin(), r.external_labels.end(),
                         [](const auto& l) { return l.first == "host"; }))
            r.external_labels.emplace_back("host", c.host);
    }
}

void apply_file(config& c, const std::string& path) {
    const std::string text = read_file(path);
    toml::table table;
    try {
        table = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        throw config_error("config", location(path, e.source()) +
                                         "TOML syntax error: " + std::string(e.description()));
    }
    for (auto&& [k, node] : table) {
        const key_spec* spec = find_key(k.str());
        if (spec == nullptr) {
            std::string message =
                location(path, k.source()) + "unknown key " + agent::quoted(k.str());
            if (const auto near = closest_key(k.str()))
                message += " (did you mean " + agent::quoted(*near) + "?)";
            throw config_error(std::string(k.str()), message);
        }
        spec->apply(c, value_in{spec->name, &node, {}, location(path, node.source())});
    }
}

/// The scopes of one [[token]]: a non-empty array of "read", "ack", "admin".
std::vector<std::string> read_token_scopes(const toml::node& node, const std::string& where) {
    const auto* arr = node.as_array();
    if (arr == nullptr || arr->empty())
        throw config_error("tokens_file", where +
                                              "scopes: expected a non-empty array of \"read\", "
                                              "\"ack\", \"admin\"");
    std::vector<std::string> out;
    for (const auto& e : *arr) {
        const auto* s = e.as_string();
        if (s == nullptr || (s->get() != "read" && s->get() != "ack" && s->get() != "admin"))
            throw config_error("tokens_file",
                               where +
                                   "scopes: " + (s ? agent::quoted(s->get()) : toml_type_name(e)) +
                                   " is not one of \"read\", \"ack\", \"admin\"");
        out.push_back(s->get());
    }
    return out;
}

/// One [[token]] table: name, scopes and sha256, nothing else.
token_spec read_token(const toml::table& t, const std::string& where) {
    token_spec tok;
    bool has_name = false, has_scopes = false, has_digest = false;
    for (auto&& [k, node] : t) {
        const std::string key(k.str());
        if (key == "name") {
            const auto* s = node.as_string();
            const bool valid = s != nullptr && !s->get().empty() && s->get().size() <= 64 &&
                               std::all_of(s->get().begin(), s->get().end(), [](char ch) {
                                   return std::isalnum(static_cast<unsigned char>(ch)) ||
                                          ch == '-' || ch == '_' || ch == '.';
                               });
            if (!valid)
                throw config_error("tokens_file",
                                   where + "name: expected 1..64 letters, digits, '-', '_', '.'");
            tok.name = s->get();
            has_name = true;
        } else if (key == "scopes") {
            tok.scopes = read_token_scopes(node, where);
            has_scopes = true;
        } else if (key == "sha256") {
            const auto* s = node.as_string();
            const auto d = s ? digest_from_hex(s->get()) : std::nullopt;
            if (!d)
                throw config_error("tokens_file",
                                   where +
                                       "sha256: expected 64 hex digits (printf %s SECRET | "
                                       "sha256sum); the secret itself is never stored");
            tok.sha256 = *d;
            has_digest = true;
        } else {
            throw config_error("tokens_file", where + "unknown key " + agent::quoted(key) +
                                                  " (a token has name, scopes and sha256)");
        }
    }
    if (!has_name || !has_scopes || !has_digest)
        throw config_error("tokens_file", where + "needs name, scopes and sha256");
    return tok;
}

/// Reads tokens_file: refused when group or others have any access, or when it holds anything
/// but [[token]] tables with known keys.
std::vector<token_spec> load_tokens_file(const std::string& path) {
    unsigned mode = 0;
    const std::string text = read_file(path, "tokens_file", &mode);
    const std::string at = "tokens_file: " + agent::quoted(path);
    if ((mode & 077) != 0) {
        char octal[16];
        std::snprintf(octal, sizeof octal, "%04o", mode);
        throw config_error("tokens_file", at + " is accessible by group or others (mode " + octal +
                                              "); chmod 600 it");
    }
    toml::table table;
    try {
        table = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        throw config_error("tokens_file", "tokens_file: " + location(path, e.source()) +
                                              "TOML syntax error: " + std::string(e.description()));
    }
    std::vector<token_spec> out;
    for (auto&& [k, node] : table) {
        const std::string where = "tokens_file: " + location(path, node.source());
        if (k.str() != "token")
            throw config_error("tokens_file", "tokens_file: " + location(path, k.source()) +
                                                  "unknown key " + agent::quoted(k.str()) +
                                                  " (the file holds [[token]] tables)");
        const auto* arr = node.as_array();
        if (arr == nullptr || !arr->is_array_of_tables())
            throw config_error("tokens_file", where + "token: expected [[token]] tables");
        for (const auto& t : *arr) {
            const std::string here = "tokens_file: " + location(path, t.source()) + "token " +
                                     std::to_string(out.size() + 1) + ": ";
            token_spec tok = read_token(*t.as_table(), here);
            for (const auto& other : out) {
                if (other.name == tok.name)
                    throw config_error("tokens_file",
                                       here + "name " + agent::quoted(tok.name) + " is used twice");
                if (other.sha256 == tok.sha256)
                    throw config_error("tokens_file",
                                       here + "same secret as token " + agent::quoted(other.name));
            }
            if (tok.name == "api_token")
                throw config_error("tokens_file",
                                   here + "the name \"api_token\" is reserved for api_token");
            out.push_back(std::move(tok));
        }
    }
    return out;
}

[[noreturn]] void unknown_argument(const std::vector<std::string>& extras) {
    const std::string arg = extras.empty() ? std::string{} : extras.front();
    if (arg.starts_with("--")) {
        const std::string option = arg.substr(0, arg.find('='));
        std::string name = option.substr(2);
        std::replace(name.begin(), name.end(), '-', '_');
        std::string message = "unknown option " + agent::quoted(option);
        if (const auto near = closest_key(name))
            message += " (did you mean \"--" + kebab(*near) + "\"?)";
        throw config_error("command line", message);
    }
    throw config_error("command line", "unexpected argument " + agent::quoted(arg) +
                                           " (settings are --flags or keys in the --config file)");
}

/// The agent's state directory: $STATE_DIRECTORY (its first entry; systemd StateDirectory=),
/// else /var/lib/plugmon for root, else $XDG_STATE_HOME/plugmon, else ~/.local/state/plugmon.
std::string default_state_dir() {
    const auto env = [](const char* name) -> std::string {
        const char* v = std::getenv(name);
        return v != nullptr ? std::string(v) : std::string();
    };
    if (auto state = env("STATE_DIRECTORY"); !state.empty())
        return state.substr(0, state.find(':'));  // the first of a list
    if (::geteuid() == 0) return "/var/lib/plugmon";
    if (auto xdg = env("XDG_STATE_HOME"); !xdg.empty()) return xdg + "/plugmon";
    if (auto home = env("HOME"); !home.empty()) return home + "/.local/state/plugmon";
    return "/tmp/plugmon-" + std::to_string(::geteuid());
}

}  // namespace

config_error::config_error(std::string key, const std::string& message)
    : std::runtime_error(message), key_(std::move(key)) {}

std::vector<double> config::default_buckets() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::string default_runtime_dir() { return plugmon::runtime_dir(); }

std::string default_spool_dir() { return default_state_dir() + "/spool"; }

std::string default_alert_state_dir() { return default_state_dir() + "/alerts"; }

std::pair<std::string, std::uint16_t> split_listen(std::string_view listen) {
    std::string problem;
    auto parts = try_split_listen(listen, problem);
    if (!parts) throw config_error("listen", "listen: " + agent::quoted(listen) + " " + problem);
    return std::move(*parts);
}

std::vector<std::pair<std::string, std::string>> describe_values(const config& c) {
    const auto buckets = [](const std::vector<double>& b) {
        if (b.empty()) return std::string("none");
        return format_number(b.front()) + ".." + format_number(b.back()) + "s(" +
               std::to_string(b.size()) + ")";
    };
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(c.socket_mode));
    std::vector<std::pair<std::string, std::string>> v;
    const auto add = [&v](std::string key, std::string value) {
        v.emplace_back(std::move(key), std::move(value));
    };
    add("runtime_dir", c.runtime_dir);
    add("listen", c.listen);
    add("postgres", (c.postgres.empty() ? std::string("none") : mask_password(c.postgres)));
    add("flush_interval", format_duration(c.flush_interval));
    add("drain_interval", format_duration(c.drain_interval));
    add("exit_drain_timeout", format_duration(c.exit_drain_timeout));
    add("log_level", std::string(log_level_name(c.log_level)));
    add("log_format", std::string(log::format_name(c.log_format)));
    add("max_producers", std::to_string(c.max_producers));
    add("socket_mode", std::string(mode));
    add("query_buckets", buckets(c.query_buckets));
    add("execution_buckets", buckets(c.execution_buckets));
    add("api_token", std::string(c.api_token.empty() ? "unset" : "set"));
    if (!c.tokens_file.empty())
        add("tokens_file", c.tokens_file + "(" + std::to_string(c.tokens.size()) + ")");
    add("read_requires_token", std::string(c.read_requires_token ? "true" : "false"));
    for (const auto& h : c.http_allowed_hosts) add("http_allowed_hosts", h);
    add("ui", std::string(c.ui ? "true" : "false"));
    if (c.ui) {
        add("ui_read_only", std::string(c.ui_read_only ? "true" : "false"));
        add("ui_max_streams", std::to_string(c.ui_max_streams));
        add("ui_interval", format_duration(c.ui_interval));
        add("ui_history", format_duration(c.ui_history));
    }
    add("series_budget", std::to_string(c.series_budget));
    add("series_budget_per_plugin", std::to_string(c.series_budget_per_plugin));
    add("series_expiry_windows", std::to_string(c.series_expiry_windows));
    add("slow_query_threshold", format_duration(c.slow_query_threshold));
    for (const auto& [plugin, d] : c.slow_query_thresholds)
        add("slow_query_thresholds." + plugin, format_duration(d));
    add("slow_query_samples", std::to_string(c.slow_query_samples));
    add("top_statements", std::to_string(c.top_statements));
    add("leak_window", format_duration(c.leak_window));
    add("leak_min_growth", std::to_string(c.leak_min_growth));
    add("leak_min_r2", format_number(c.leak_min_r2));
    if (!c.postgres.empty()) {
        add("host", c.host);
        add("spool_dir", c.spool_dir);
        add("spool_max_bytes", std::to_string(c.spool_max_bytes));
        add("postgres_retention", format_duration(c.postgres_retention));
        add("postgres_downsample_after", format_duration(c.postgres_downsample_after));
        add("postgres_backoff_max", format_duration(c.postgres_backoff_max));
    }
    for (const auto& r : c.alert_rules) add("alert_rules", r);
    if (!c.alert_rules.empty()) add("alert_state_dir", c.alert_state_dir);
    for (const auto& r : c.remote_write)
        add("remote_write",
            r.name + "(" + r.url + ", " + std::to_string(r.headers.size()) + " headers)");
    if (!c.config_file.empty()) add("config", c.config_file);
    return v;
}

std::string describe(const config& c) {
    std::string line;
    for (const auto& [key, value] : describe_values(c)) {
        if (!line.empty()) line += ' ';
        line += key + "=" + value;
    }
    return line;
}

config parse_command_line(int argc, const char* const* argv) {
    CLI::App app{
        "plugmon-agent: drains plugin probes, aggregates, and exports to Prometheus and "
        "PostgreSQL.\nDurations are written with a unit: 250us, 500ms, 10s, 2m, 1h.",
        "plugmon-agent"};
    app.set_version_flag("--version", std::string("plugmon-agent ") + project_version);
    std::string config_path;
    auto* config_option = app.add_option("--config", config_path,
                                         "TOML file with any of the keys below (snake_case); "
                                         "flags override it")
                              ->type_name("FILE");
    constexpr std::size_t key_count = std::size(keys);
    std::array<std::string, key_count> flag_values;
    std::array<CLI::Option*, key_count> flag_options{};
    for (std::size_t i = 0; i < key_count; ++i) {
        flag_options[i] =
            app.add_option("--" + kebab(keys[i].name), flag_values[i], std::string(keys[i].help))
                ->type_name(std::string(keys[i].value_name));
    }
    // The options above are the daemon's; the subcommand takes them too (before or after it).
    auto* migrate = app.add_subcommand(
        "migrate",
        "apply the PostgreSQL schema migrations (needs --postgres) and exit; the daemon also "
        "applies them at start");
    migrate->fallthrough();
    bool dry_run = false;
    migrate->add_flag("--dry-run", dry_run, "list the pending migrations, change nothing");
    auto* check_rules =
        app.add_subcommand("check-rules", "validate alert rules files; exit 0 when all are valid");
    check_rules->fallthrough();
    std::vector<std::string> check_files;
    check_rules->add_option("files", check_files, "rules files or globs")
        ->required()
        ->type_name("FILE");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        throw help_requested(app.help());
    } catch (const CLI::CallForAllHelp&) {
        throw help_requested(app.help());
    } catch (const CLI::CallForVersion& e) {
        throw help_requested(std::string(e.what()) + "\n");
    } catch (const CLI::ExtrasError&) {
        unknown_argument(app.remaining());
    } catch (const CLI::ParseError& e) {
        throw config_error("command line", e.what());
    }

    config c;
    c.runtime_dir = default_runtime_dir();
    c.spool_dir = default_spool_dir();
    c.alert_state_dir = default_alert_state_dir();
    {
        char name[256] = {};
        if (::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0')
            c.host = name;
        else
            c.host = "localhost";
    }
    if (migrate->parsed()) {
        c.command = "migrate";
        c.dry_run = dry_run;
    }
    if (check_rules->parsed()) {
        c.command = "check-rules";
        c.check_files = std::move(check_files);
    }
    if (config_option->count() > 0) {
        c.config_file = config_path;
        apply_file(c, config_path);
    }
    for (std::size_t i = 0; i < key_count; ++i) {
        if (flag_options[i]->count() == 0) continue;
        keys[i].apply(c, value_in{keys[i].name, nullptr, flag_values[i], {}});
    }
    if (c.series_budget_per_plugin > c.series_budget)
        throw config_error(
            "series_budget_per_plugin",
            "series_budget_per_plugin: " + std::to_string(c.series_budget_per_plugin) +
                " exceeds series_budget (" + std::to_string(c.series_budget) + ")");
    if (!c.tokens_file.empty()) c.tokens = load_tokens_file(c.tokens_file);
    finish_remote_write(c);
    if (c.read_requires_token && c.api_token.empty() && c.tokens.empty())
        throw config_error("read_requires_token",
                           "read_requires_token: true, but no token is configured (set "
                           "api_token or tokens_file)");
    if (c.command == "migrate" && c.postgres.empty())
        throw config_error("postgres", "postgres: migrate needs a database (--postgres URL)");
    if (c.postgres_downsample_after >= c.postgres_retention)
        throw config_error(
            "postgres_downsample_after",
            "postgres_downsample_after: " + format_duration(c.postgres_downsample_after) +
                " is not shorter than postgres_retention (" +
                format_duration(c.postgres_retention) + ")");
    return c;
}

std::chrono::nanoseconds config::slow_threshold_for(std::string_view plugin) const {
    for (const auto& [name, d] : slow_query_thresholds)
        if (name == plugin) return d;
    return slow_query_threshold;
}

}  // namespace plugmon::agent
