// plugmonctl top: per-plugin rates from two polls of the agent's JSON API, rendered as a live view.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace plugmon::ctl {

/// What the table is ordered by; `s` in the live view cycles through them in this order.
enum class top_sort { time, calls, p99, errors, name };

/// "time", "calls/s", "p99", "errors", "name".
const char* to_string(top_sort key) noexcept;

/// The key after `key`, wrapping from name back to time.
top_sort next(top_sort key) noexcept;

/// One poll of the agent: the bodies of two endpoints, parsed.
struct top_sample {
    nlohmann::json plugins = nlohmann::json::array();  ///< the "plugins" array of /api/v1/plugins
    nlohmann::json producers = nlohmann::json::object();  ///< the whole /api/v1/producers body
};

/// One line of the table, as numbers. An empty optional is shown as "-".
struct top_row {
    std::string plugin;
    std::optional<double> calls_per_s;    ///< delta of "calls" / elapsed
    std::optional<double> error_percent;  ///< delta-based when calls moved, else cumulative
    std::optional<double> p99_s;          ///< window.p99_seconds, else since_start.p99_seconds
    std::optional<double> busy;           ///< delta of "query_seconds" / elapsed (busy fraction)
    std::optional<double> cpu_percent;    ///< delta of "cpu_seconds" / elapsed, in percent
    std::optional<double> live_bytes;     ///< only when "alloc_tracked" is true
    bool leak = false;                    ///< leak.suspected
    double calls = 0;                     ///< cumulative, for tie-breaking
    double query_s = 0;                   ///< cumulative, for tie-breaking
};

/// Rows of `cur`, one per plugin, ordered by `key` (ties: cumulative figure, then name).
/// Rates need `prev` (nullptr on the first frame) and `elapsed_s` > 0; a plugin absent from
/// `prev`, or whose counters went backwards (agent restart), gets no rates rather than wrong ones.
/// Fields other than "plugin" may be missing, null or of the wrong type; entries without a
/// string "plugin" are skipped. Pure; never throws on odd JSON.
std::vector<top_row> top_rows(const nlohmann::json* prev_plugins, const nlohmann::json& cur_plugins,
                              double elapsed_s, top_sort key);

/// Everything about a frame that is not agent data.
struct top_view {
    std::string agent;  ///< host:port, shown in the header
    std::string clock;  ///< wall-clock time, shown in the header
    int width = 80;     ///< columns; every line fits
    int height = 24;    ///< lines; the frame has at most this many
    top_sort sort = top_sort::time;
    std::string error;  ///< non-empty: the last poll failed (the table is the last good one)
};

/// The frame text: a header line (agent, clock, producers, drained/s, drops), the column titles,
/// then one line per plugin, each line ending in '\n'. Pure; never throws on odd JSON.
std::string render_top(const top_sample* prev, const top_sample& cur, double elapsed_s,
                       const top_view& view);

/// "850µs", "9.0ms", "2.50s".
std::string human_seconds(double s);

/// "512B", "1.5KiB", "1.0MiB", "3.2GiB".
std::string human_bytes(double bytes);

/// GETs one target of the agent's API ("/api/v1/plugins") and returns the body; throws on failure.
using top_fetch = std::function<std::string(const std::string& target)>;

/// Polls both endpoints; throws std::runtime_error when a body is not the expected JSON.
top_sample fetch_top_sample(const top_fetch& fetch);

/// How the loop runs; the clock functions are replaceable so the loop can be specified in tests.
struct top_options {
    std::string agent;
    double interval_s = 1.0;
    int iterations = 1;                       ///< frames to print in batch mode
    std::function<double()> monotonic_s;      ///< default: steady_clock in seconds
    std::function<void(double)> sleep_s;      ///< default: this_thread::sleep_for
    std::function<std::string()> wall_clock;  ///< default: local "HH:MM:SS"
    /// Width and height; default: TIOCGWINSZ on stdout, else 80x24.
    std::function<std::pair<int, int>()> size;
};

/// Batch mode: prints `iterations` frames, one every `interval_s`, separated by a blank line, with
/// no escape codes. Returns 0; a failed poll propagates as an exception.
int run_top_batch(const top_options& opts, const top_fetch& fetch, std::ostream& out);

/// The terminal could not be put into (or back out of) the live view's mode.
class top_terminal_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Live mode on the controlling terminal (stdin and stdout must be ttys): alternate screen, hidden
/// cursor, keys without echo. `q` or Ctrl-C quits, `s` cycles the sort key. The first poll must
/// succeed (else its exception propagates, before the screen is touched); later failures are shown
/// in the header while polling continues. The terminal is restored on every path out, including
/// exceptions, SIGINT and SIGTERM. Returns 0, or 128+SIGTERM when terminated. Installs process-wide
/// signal handlers for its duration (restoring the old ones): one live view per process at a time.
int run_top_interactive(const top_options& opts, const top_fetch& fetch);

/// Fills the unset clock and size functions of `opts` with the real ones.
top_options with_defaults(top_options opts);

}  // namespace plugmon::ctl
