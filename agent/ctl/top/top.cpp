// plugmonctl top: the rates, the frame text, and the batch and live loops around them.
#include "ctl/top/top.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <map>
#include <ostream>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

namespace plugmon::ctl {

using json = nlohmann::json;

const char* to_string(top_sort key) noexcept {
    switch (key) {
        case top_sort::time:
            return "time";
        case top_sort::calls:
            return "calls/s";
        case top_sort::p99:
            return "p99";
        case top_sort::errors:
            return "errors";
        case top_sort::name:
            return "name";
    }
    return "?";
}

top_sort next(top_sort key) noexcept {
    switch (key) {
        case top_sort::time:
            return top_sort::calls;
        case top_sort::calls:
            return top_sort::p99;
        case top_sort::p99:
            return top_sort::errors;
        case top_sort::errors:
            return top_sort::name;
        case top_sort::name:
            return top_sort::time;
    }
    return top_sort::time;
}

namespace {

// ---- reading the agent's JSON: missing, null, non-numeric or non-finite is "unknown" ----

std::optional<double> number(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    const auto it = obj.find(key);
    if (it == obj.end() || !it->is_number()) return std::nullopt;
    const double v = it->get<double>();
    if (!std::isfinite(v)) return std::nullopt;
    return v;
}

std::optional<double> nested_number(const json& obj, const char* outer, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    const auto it = obj.find(outer);
    if (it == obj.end()) return std::nullopt;
    return number(*it, key);
}

bool flag(const json& obj, const char* key) {
    if (!obj.is_object()) return false;
    const auto it = obj.find(key);
    return it != obj.end() && it->is_boolean() && it->get<bool>();
}

const std::string* plugin_name(const json& entry) {
    if (!entry.is_object()) return nullptr;
    const auto it = entry.find("plugin");
    if (it == entry.end() || !it->is_string()) return nullptr;
    return it->get_ptr<const std::string*>();
}

/// Cumulative counters of one plugin; if any went down the agent restarted (or forgot series), and
/// a delta across that would be meaningless.
bool went_backwards(const json& before, const json& now) {
    for (const char* key :
         {"calls", "errors", "rows", "query_seconds", "executions", "cpu_seconds"}) {
        const auto a = number(before, key);
        const auto b = number(now, key);
        if (a && b && *b < *a) return true;
    }
    return false;
}

/// Orders rows by `key`; a missing figure sorts as if it were lowest, the name breaks every tie.
void sort_rows(std::vector<top_row>& rows, top_sort key) {
    const auto desc = [](const std::optional<double>& a, const std::optional<double>& b) {
        return a.value_or(-1.0) > b.value_or(-1.0);
    };
    const auto equal = [](const std::optional<double>& a, const std::optional<double>& b) {
        return a.value_or(-1.0) == b.value_or(-1.0);
    };
    std::sort(rows.begin(), rows.end(), [&](const top_row& a, const top_row& b) {
        switch (key) {
            case top_sort::time:
                // An unknown delta counts as none spent, so the first frame orders by the totals.
                if (a.busy.value_or(0.0) != b.busy.value_or(0.0))
                    return a.busy.value_or(0.0) > b.busy.value_or(0.0);
                if (a.query_s != b.query_s) return a.query_s > b.query_s;
                break;
            case top_sort::calls:
                if (a.calls_per_s.value_or(0.0) != b.calls_per_s.value_or(0.0))
                    return a.calls_per_s.value_or(0.0) > b.calls_per_s.value_or(0.0);
                if (a.calls != b.calls) return a.calls > b.calls;
                break;
            case top_sort::p99:
                if (!equal(a.p99_s, b.p99_s)) return desc(a.p99_s, b.p99_s);
                break;
            case top_sort::errors:
                if (!equal(a.error_percent, b.error_percent))
                    return desc(a.error_percent, b.error_percent);
                break;
            case top_sort::name:
                break;
        }
        return a.plugin < b.plugin;
    });
}

// ---- text: widths are counted in code points (one terminal column each) ----

/// Length of the UTF-8 sequence starting at s[i] (its lead byte and the right number of
/// continuation bytes), or 0 when the bytes there do not form one.
std::size_t sequence_length(std::string_view s, std::size_t i) {
    const auto lead = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf)
        len = 2;
    else if (lead >= 0xe0 && lead <= 0xef)
        len = 3;
    else if (lead >= 0xf0 && lead <= 0xf4)
        len = 4;
    else
        return 0;
    if (i + len > s.size()) return 0;
    for (std::size_t k = 1; k < len; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
    return len;
}

/// `s` with control characters (C0, DEL, C1) and stray bytes replaced by '?': text from the agent
/// must not be able to move the cursor or change the terminal's state.
std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = sequence_length(s, i);
        const auto c = static_cast<unsigned char>(s[i]);
        const bool c1 = len == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0;
        if (len == 0 || c < 0x20 || c == 0x7f || c1) {
            out.push_back('?');
            i += len == 0 ? 1 : len;
            continue;
        }
        out.append(s.substr(i, len));
        i += len;
    }
    return out;
}

/// Columns `s` takes: its code points (only printable() text reaches here).
std::size_t columns(std::string_view s) {
    std::size_t n = 0;
    for (const char c : s)
        if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
    return n;
}

/// The first `n` code points of `s`.
std::string_view first_columns(std::string_view s, std::size_t n) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
            if (seen == n) return s.substr(0, i);
            ++seen;
        }
    }
    return s;
}

constexpr std::string_view ellipsis = "\u2026";

/// `s` cut to `width` columns, its last one an ellipsis when anything was cut.
std::string ellipsize(std::string_view s, std::size_t width) {
    if (columns(s) <= width) return std::string(s);
    if (width == 0) return {};
    return std::string(first_columns(s, width - 1)) + std::string(ellipsis);
}

std::string pad_left(std::string_view s, std::size_t width) {
    const std::size_t n = columns(s);
    return std::string(n < width ? width - n : 0, ' ') + std::string(s);
}

std::string pad_right(std::string_view s, std::size_t width) {
    const std::size_t n = columns(s);
    return std::string(s) + std::string(n < width ? width - n : 0, ' ');
}

/// The line without trailing blanks, then cut to `width` columns.
std::string fit(std::string line, int width) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return std::string(first_columns(line, static_cast<std::size_t>(std::max(width, 0))));
}

const std::string dash = "-";

std::string human_rate(double per_s) {
    if (per_s < 999.95) return fmt::format("{:.1f}", per_s);
    if (per_s < 999999.5) return fmt::format("{:.0f}", per_s);
    return fmt::format("{:.2f}M", per_s / 1e6);
}

std::string show(const std::optional<double>& v, std::string (*format)(double)) {
    return v ? format(*v) : dash;
}

std::string show_percent(double p) { return fmt::format("{:.2f}%", p); }
std::string show_cpu(double p) { return fmt::format("{:.1f}%", p); }
std::string show_busy(double b) {
    return b < 9.9995 ? fmt::format("{:.3f}", b) : fmt::format("{:.1f}", b);
}

// ---- the table ----

struct column {
    std::string_view title;
    std::size_t width;
};
// After PLUGIN, right-aligned, one blank before each; then LEAK, left-aligned.
constexpr column number_columns[] = {{"CALLS/S", 9}, {"ERR%", 7}, {"P99", 8},
                                     {"TIME/S", 7},  {"CPU", 7},  {"LIVE", 9}};
constexpr std::size_t number_count = std::size(number_columns);
using number_cells = std::string[number_count];
constexpr std::string_view leak_title = "LEAK";

std::size_t fixed_columns() {
    std::size_t n = 1 + leak_title.size();
    for (const auto& c : number_columns) n += 1 + c.width;
    return n;
}

std::string table_line(std::string_view name, const number_cells& cells, std::string_view leak,
                       std::size_t name_width) {
    std::string line = pad_right(ellipsize(name, name_width), name_width);
    for (std::size_t i = 0; i < number_count; ++i)
        line += " " + pad_left(cells[i], number_columns[i].width);
    line += " ";
    line += leak;
    return line;
}

/// Events drained per second between the polls; unknown without both totals, or if it went back.
std::optional<double> drained_per_s(const top_sample* prev, const top_sample& cur,
                                    double elapsed_s) {
    if (prev == nullptr || !(elapsed_s > 0) || !std::isfinite(elapsed_s)) return std::nullopt;
    const auto before = nested_number(prev->producers, "totals", "drained");
    const auto now = nested_number(cur.producers, "totals", "drained");
    if (!before || !now || *now < *before) return std::nullopt;
    return (*now - *before) / elapsed_s;
}

std::string header_line(const top_sample* prev, const top_sample& cur, double elapsed_s,
                        const top_view& view) {
    std::string h = printable(view.agent);
    if (!view.clock.empty()) h += "  " + printable(view.clock);
    if (!view.error.empty()) return h + "  UNREACHABLE: " + printable(view.error) + " (retrying)";

    const json& p = cur.producers;
    if (p.is_object() && p.contains("producers") && p["producers"].is_array())
        h += fmt::format("  producers {}", p["producers"].size());
    else
        h += "  producers -";

    if (const auto rate = drained_per_s(prev, cur, elapsed_s))
        h += fmt::format("  drained {:.0f}/s", *rate);
    else
        h += "  drained -/s";

    // The sum of every kind of drop the agent reports, whatever kinds a later agent adds.
    std::optional<double> drops;
    const auto totals = p.find("totals");  // end() for anything but an object
    if (totals != p.end() && totals->is_object()) {
        const auto dropped = totals->find("dropped");
        if (dropped != totals->end() && dropped->is_object()) {
            double sum = 0;
            for (const auto& n : *dropped)
                if (n.is_number()) sum += n.get<double>();
            drops = sum;
        }
    }
    h += drops ? fmt::format("  drops {:.0f}", *drops) : std::string("  drops -");
    h += "  sort ";
    h += to_string(view.sort);
    return h;
}

}  // namespace

std::string human_seconds(double s) {
    if (!std::isfinite(s)) return dash;
    s = std::max(s, 0.0);
    if (s * 1e6 < 999.5) return fmt::format("{:.0f}\u00b5s", s * 1e6);
    if (s * 1e3 < 999.95) return fmt::format("{:.1f}ms", s * 1e3);
    if (s < 99.995) return fmt::format("{:.2f}s", s);
    return fmt::format("{:.0f}s", s);
}

std::string human_bytes(double bytes) {
    if (!std::isfinite(bytes)) return dash;
    bytes = std::max(bytes, 0.0);
    if (bytes < 1024) return fmt::format("{:.0f}B", bytes);
    static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = bytes / 1024;
    std::size_t u = 0;
    while (v >= 1023.95 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    return fmt::format("{:.1f}{}", v, units[u]);
}

std::vector<top_row> top_rows(const json* prev_plugins, const json& cur_plugins, double elapsed_s,
                              top_sort key) {
    std::vector<top_row> rows;
    if (!cur_plugins.is_array()) return rows;
    const bool rates = prev_plugins != nullptr && prev_plugins->is_array() && elapsed_s > 0 &&
                       std::isfinite(elapsed_s);
    std::map<std::string_view, const json*> before;
    if (rates)
        for (const auto& p : *prev_plugins)
            if (const auto* n = plugin_name(p)) before.emplace(*n, &p);

    std::set<std::string_view> seen;
    for (const auto& p : cur_plugins) {
        const auto* name = plugin_name(p);
        if (name == nullptr || !seen.insert(*name).second) continue;
        top_row r;
        r.plugin = *name;
        const auto calls = number(p, "calls");
        const auto errors = number(p, "errors");
        r.calls = calls.value_or(0.0);
        r.query_s = number(p, "query_seconds").value_or(0.0);

        const json* old = nullptr;
        if (const auto it = before.find(*name); it != before.end()) old = it->second;
        if (old != nullptr && went_backwards(*old, p)) old = nullptr;  // a reset: no rates
        const auto per_s = [&](const char* k) -> std::optional<double> {
            if (old == nullptr) return std::nullopt;
            const auto a = number(*old, k);
            const auto b = number(p, k);
            if (!a || !b) return std::nullopt;
            return (*b - *a) / elapsed_s;
        };
        r.calls_per_s = per_s("calls");
        r.busy = per_s("query_seconds");
        if (const auto cpu = per_s("cpu_seconds")) r.cpu_percent = *cpu * 100.0;

        if (old != nullptr) {
            const auto calls_before = number(*old, "calls");
            const auto errors_before = number(*old, "errors");
            if (calls && errors && calls_before && errors_before && *calls > *calls_before)
                r.error_percent = 100.0 * (*errors - *errors_before) / (*calls - *calls_before);
        }
        if (!r.error_percent) {
            if (const auto ratio = number(p, "error_ratio"))
                r.error_percent = 100.0 * *ratio;
            else if (calls && errors && *calls > 0)
                r.error_percent = 100.0 * *errors / *calls;
        }

        r.p99_s = nested_number(p, "window", "p99_seconds");
        if (!r.p99_s) r.p99_s = nested_number(p, "since_start", "p99_seconds");
        if (flag(p, "alloc_tracked")) r.live_bytes = number(p, "live_bytes");
        if (p.contains("leak")) r.leak = flag(p["leak"], "suspected");
        rows.push_back(std::move(r));
    }
    sort_rows(rows, key);
    return rows;
}

std::string render_top(const top_sample* prev, const top_sample& cur, double elapsed_s,
                       const top_view& view) {
    const int width = std::max(view.width, 1);
    const int height = std::max(view.height, 1);
    std::vector<std::string> lines;
    lines.push_back(header_line(prev, cur, elapsed_s, view));

    const auto rows = top_rows(prev ? &prev->plugins : nullptr, cur.plugins, elapsed_s, view.sort);
    std::vector<std::string> names;
    std::size_t longest = std::string_view("PLUGIN").size();
    for (const auto& r : rows) {
        names.push_back(printable(r.plugin));
        longest = std::max(longest, columns(names.back()));
    }
    const std::size_t room = static_cast<std::size_t>(width) > fixed_columns()
                                 ? static_cast<std::size_t>(width) - fixed_columns()
                                 : 0;
    const std::size_t name_width = std::min(longest, std::max<std::size_t>(room, 8));

    if (height >= 2) {
        number_cells titles;
        for (std::size_t i = 0; i < number_count; ++i)
            titles[i] = std::string(number_columns[i].title);
        lines.push_back(table_line("PLUGIN", titles, leak_title, name_width));
    }
    const auto capacity = static_cast<std::size_t>(std::max(height - 2, 0));
    if (rows.empty() && capacity > 0) lines.emplace_back("(no plugins reported yet)");
    const std::size_t shown =
        rows.size() <= capacity ? rows.size() : (capacity > 0 ? capacity - 1 : 0);
    for (std::size_t i = 0; i < shown; ++i) {
        const top_row& r = rows[i];
        const number_cells cells = {
            show(r.calls_per_s, human_rate), show(r.error_percent, show_percent),
            show(r.p99_s, human_seconds),    show(r.busy, show_busy),
            show(r.cpu_percent, show_cpu),   show(r.live_bytes, human_bytes)};
        lines.push_back(table_line(names[i], cells, r.leak ? "!" : "", name_width));
    }
    if (capacity > 0 && rows.size() > capacity)
        lines.push_back(fmt::format("{} {} more", ellipsis, rows.size() - shown));

    std::string frame;
    for (auto& line : lines) {
        frame += fit(std::move(line), width);
        frame += '\n';
    }
    return frame;
}

top_sample fetch_top_sample(const top_fetch& fetch) {
    const auto parse = [&](const char* target) {
        json body = json::parse(fetch(target), nullptr, /*allow_exceptions=*/false);
        if (!body.is_object())
            throw std::runtime_error(std::string(target) + ": the body is not a JSON object");
        return body;
    };
    top_sample s;
    json plugins = parse("/api/v1/plugins");
    if (!plugins.contains("plugins") || !plugins["plugins"].is_array())
        throw std::runtime_error("/api/v1/plugins: no \"plugins\" array in the body");
    s.plugins = std::move(plugins["plugins"]);
    s.producers = parse("/api/v1/producers");
    return s;
}

top_options with_defaults(top_options opts) {
    if (!opts.monotonic_s)
        opts.monotonic_s = [] {
            return std::chrono::duration<double>(
                       std::chrono::steady_clock::now().time_since_epoch())
                .count();
        };
    if (!opts.sleep_s)
        opts.sleep_s = [](double s) {
            std::this_thread::sleep_for(std::chrono::duration<double>(s));
        };
    if (!opts.wall_clock)
        opts.wall_clock = [] {
            const std::time_t now = std::time(nullptr);
            std::tm local{};
            char text[16] = "?";
            if (localtime_r(&now, &local) != nullptr)
                std::strftime(text, sizeof text, "%H:%M:%S", &local);
            return std::string(text);
        };
    if (!opts.size)
        opts.size = [] {
            winsize ws{};
            if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
                return std::pair<int, int>(ws.ws_col, ws.ws_row);
            return std::pair<int, int>(80, 24);
        };
    return opts;
}

int run_top_batch(const top_options& options, const top_fetch& fetch, std::ostream& out) {
    const top_options o = with_defaults(options);
    std::optional<top_sample> prev;
    double prev_at = 0;
    for (int i = 0; i < o.iterations; ++i) {
        if (i > 0) {
            const double wait = prev_at + o.interval_s - o.monotonic_s();
            if (wait > 0) o.sleep_s(wait);
            out << '\n';
        }
        const double at = o.monotonic_s();
        top_sample cur = fetch_top_sample(fetch);
        const auto [width, height] = o.size();
        const top_view view{o.agent, o.wall_clock(), width, height, top_sort::time, {}};
        out << render_top(prev ? &*prev : nullptr, cur, at - prev_at, view);
        out.flush();
        prev = std::move(cur);
        prev_at = at;
    }
    return 0;
}

namespace {

// Set by the handlers, read by the live loop; poll() returns EINTR when one of them ran.
volatile std::sig_atomic_t quit_signal = 0;
volatile std::sig_atomic_t window_resized = 0;

void on_quit_signal(int sig) { quit_signal = sig; }
void on_window_change(int) { window_resized = 1; }

void write_all(std::string_view s) {
    while (!s.empty()) {
        const ssize_t n = ::write(STDOUT_FILENO, s.data(), s.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the terminal is gone: nothing useful left to do with the bytes
        s.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

/// The live view's terminal state, from construction to destruction: signal handlers, keys
/// without echo or line buffering, alternate screen, hidden cursor. The destructor puts all of it
/// back, so every way out of the loop (return, exception) restores the terminal.
class terminal_session {
public:
    terminal_session() {
        if (::tcgetattr(STDIN_FILENO, &saved_) != 0)
            throw top_terminal_error(errno_text("tcgetattr"));
        // Handlers first: from here on SIGINT/SIGTERM only set a flag, so the restore below runs.
        struct sigaction sa {};
        sa.sa_handler = on_quit_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART: poll() must wake up
        ::sigaction(SIGINT, &sa, &old_int_);
        ::sigaction(SIGTERM, &sa, &old_term_);
        sa.sa_handler = on_window_change;
        ::sigaction(SIGWINCH, &sa, &old_winch_);

        termios keys = saved_;
        keys.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        keys.c_cc[VMIN] = 1;
        keys.c_cc[VTIME] = 0;
        if (::tcsetattr(STDIN_FILENO, TCSANOW, &keys) != 0) {
            const std::string why = errno_text("tcsetattr");
            restore_signals();
            throw top_terminal_error(why);
        }
        write_all("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
    }
    ~terminal_session() {
        write_all("\x1b[?25h\x1b[?1049l");
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
        restore_signals();
    }
    terminal_session(const terminal_session&) = delete;
    terminal_session& operator=(const terminal_session&) = delete;

private:
    void restore_signals() noexcept {
        ::sigaction(SIGWINCH, &old_winch_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
        ::sigaction(SIGINT, &old_int_, nullptr);
    }

    termios saved_{};
    struct sigaction old_int_ {};
    struct sigaction old_term_ {};
    struct sigaction old_winch_ {};
};

/// Draws a frame over the previous one. Each line is cleared before it is written, never after:
/// a full-width last line leaves the cursor in the wrap position, where an erase would eat the
/// last column.
void draw(const std::string& frame, int height) {
    std::string out = "\x1b[H";
    int lines = 0;
    std::size_t start = 0;
    while (start < frame.size()) {
        const std::size_t end = frame.find('\n', start);
        if (lines > 0) out += "\r\n";
        out += "\x1b[2K";
        out.append(frame, start, (end == std::string::npos ? frame.size() : end) - start);
        ++lines;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    if (lines < height) out += "\r\n\x1b[J";  // not on the last row: clears what is left below
    write_all(out);
}

}  // namespace

int run_top_interactive(const top_options& options, const top_fetch& fetch) {
    const top_options o = with_defaults(options);
    // The first poll happens before the screen changes: an unreachable agent is a plain error.
    double cur_at = o.monotonic_s();
    top_sample cur = fetch_top_sample(fetch);
    std::optional<top_sample> prev;
    double elapsed = 0;
    std::string error;
    top_sort sort = top_sort::time;

    quit_signal = 0;
    window_resized = 0;
    terminal_session session;
    double next_poll = cur_at + o.interval_s;
    bool quit = false;
    bool dirty = true;
    while (!quit && quit_signal == 0) {
        if (window_resized != 0) {
            window_resized = 0;
            dirty = true;
        }
        if (dirty) {
            const auto [width, height] = o.size();
            const top_view view{o.agent, o.wall_clock(), width, height, sort, error};
            draw(render_top(prev ? &*prev : nullptr, cur, elapsed, view), height);
            dirty = false;
        }
        const double wait = next_poll - o.monotonic_s();
        if (wait <= 0) {
            const double at = o.monotonic_s();
            try {
                top_sample fresh = fetch_top_sample(fetch);
                // After an outage the rates span it: last good poll to this one.
                prev = std::move(cur);
                cur = std::move(fresh);
                elapsed = at - cur_at;
                cur_at = at;
                error.clear();
            } catch (const std::exception& e) {
                error = e.what();
            }
            next_poll += o.interval_s;
            if (next_poll < o.monotonic_s()) next_poll = o.monotonic_s() + o.interval_s;
            dirty = true;
            continue;
        }
        pollfd key{STDIN_FILENO, POLLIN, 0};
        const int timeout_ms = static_cast<int>(std::ceil(std::min(wait, 3600.0) * 1000.0));
        const int ready = ::poll(&key, 1, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            throw top_terminal_error(errno_text("poll"));
        }
        if (ready == 0) continue;
        if ((key.revents & POLLIN) == 0) break;  // hang-up or error: the terminal is gone
        char typed[64];
        const ssize_t n = ::read(STDIN_FILENO, typed, sizeof typed);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw top_terminal_error(errno_text("read"));
        }
        for (ssize_t i = 0; i < n; ++i) {
            if (typed[i] == 'q' || typed[i] == '\x03') quit = true;
            if (typed[i] == 's') {
                sort = next(sort);
                dirty = true;
            }
        }
    }
    return quit_signal == SIGTERM ? 128 + SIGTERM : 0;
}

}  // namespace plugmon::ctl
