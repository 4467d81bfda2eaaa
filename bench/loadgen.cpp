// plugmon-loadgen: simulated plugin processes recording through the real probe, with exact accounting checks.

#include <plugmon/probe.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::nanoseconds;

constexpr unsigned max_processes = 4096;
constexpr unsigned max_threads = 4096;
constexpr unsigned max_names = 1'000'000;  // per kind; the probe folds what its table cannot hold
constexpr unsigned execution_every = 100;  // mixed: queries inside one execution() scope
constexpr unsigned count_every = 10;       // mixed: one count("cache_miss") per this many queries
constexpr unsigned pool_every = 1000;      // mixed: one pool sample per this many queries
constexpr unsigned pool_size = 16;         // mixed: simulated connection-pool size
constexpr unsigned statement_variants = 4;  // --statements: literal variants per shape
constexpr double latency_sigma = 0.5;      // spread (lognormal sigma) of simulated query latency
constexpr unsigned latency_table_bits = 12;
constexpr std::uint64_t default_record_ns = 100'000;  // record mode's median when --query-ns is 0
constexpr int exit_usage = 2;
constexpr int exit_child_failed = 3;

enum class mix_kind { query, macro, record, mixed };

struct options {
    unsigned processes = 1;
    unsigned threads = 1;
    std::uint64_t events = 0;
    nanoseconds duration{0};
    double rate = 0;
    unsigned plugins = 2;
    std::string plugin_prefix = "plugin-";
    unsigned tables = 3;
    unsigned tenants = 0;
    std::vector<std::string> ops{"SELECT", "INSERT", "UPDATE", "DELETE"};
    double error_ratio = 0;
    mix_kind mix = mix_kind::query;
    std::uint64_t query_ns = 0;
    nanoseconds wait_attached{0};
    nanoseconds linger_attached{0};
    std::string progress_file;
    std::uint64_t seed = 1;
    bool json = false;
    bool quiet = false;
    bool allow_kill = false;
    bool print_pids = false;
    bool measure_latency = false;
    unsigned statements = 0;        // statement shapes attached to queries (0 = none)
    std::vector<std::string> statement_texts;  // --statement-text: verbatim, beside the shapes
    std::uint64_t alloc_bytes = 0;  // mixed: bytes each execution allocates and frees
    std::uint64_t leak_bytes = 0;   // mixed: bytes each execution of plugin 0 allocates and keeps
    std::uint64_t slow_every = 0;   // record mix: every Nth query takes slow_ns (0 = never)
    nanoseconds slow_duration{std::chrono::seconds(2)};
};

// ---- small utilities ----

/// "10s", "500ms", "250us", "100ns", "2m", "1h", "1.5s"; a bare number is seconds.
std::optional<nanoseconds> parse_duration(std::string_view text) {
    double value = 0;
    const char* first = text.data();
    const char* last = first + text.size();
    const auto [end, ec] = std::from_chars(first, last, value);
    if (ec != std::errc{} || end == first) return std::nullopt;
    const std::string_view unit(end, std::size_t(last - end));
    double scale = 0;
    if (unit.empty() || unit == "s")
        scale = 1e9;
    else if (unit == "ms")
        scale = 1e6;
    else if (unit == "us")
        scale = 1e3;
    else if (unit == "ns")
        scale = 1;
    else if (unit == "m" || unit == "min")
        scale = 60e9;
    else if (unit == "h")
        scale = 3600e9;
    else
        return std::nullopt;
    const double ns = value * scale;
    if (!std::isfinite(ns) || ns < 0 || ns > 1e18) return std::nullopt;
    return nanoseconds(std::int64_t(ns));
}

std::string format_duration(nanoseconds d) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%gs", double(d.count()) / 1e9);
    return buf;
}

constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/// xorshift64*: a few cycles per draw, plenty for choosing names and outcomes.
class fast_rng {
public:
    explicit fast_rng(std::uint64_t seed) noexcept : state_(splitmix64(seed) | 1) {}
    std::uint64_t next() noexcept {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545f4914f6cdd1dull;
    }
    /// Uniform in [0, n) by multiply-shift of the high 32 bits (n < 2^32).
    std::uint32_t below(std::uint32_t n) noexcept {
        return std::uint32_t(((next() >> 32) * n) >> 32);
    }

private:
    std::uint64_t state_;
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// Busy-waits: a simulated query keeps its thread on the CPU, as a client waiting on a socket
/// poll loop would, and never hands the core to the scheduler mid-measurement.
inline void spin_for(std::uint64_t ns) noexcept {
    const auto until = steady::now() + nanoseconds(ns);
    while (steady::now() < until) cpu_relax();
}

bool write_all(int fd, const char* data, std::size_t size) noexcept {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        size -= std::size_t(n);
    }
    return true;
}

/// Token bucket on steady_clock. Checked once per batch of events (about one check per
/// millisecond of budget), so pacing costs one clock read and at most one sleep per batch.
class pacer {
public:
    pacer(double rate, steady::time_point origin) noexcept : rate_(rate), origin_(origin) {
        if (rate_ > 0) {
            batch_ = std::clamp<std::uint64_t>(std::uint64_t(rate_ / 1000), 1, 4096);
            const nanoseconds batch_time(std::int64_t(1e9 * double(batch_) / rate_));
            burst_ = std::max<nanoseconds>(batch_time, std::chrono::milliseconds(20));
        }
    }
    bool enabled() const noexcept { return rate_ > 0; }
    std::uint64_t batch() const noexcept { return batch_; }

    /// Sleeps until event number `done` (0-based) has its token, or until `deadline`.
    /// A thread that fell behind catches up by at most the bucket's capacity (burst_).
    /// Returns the current time.
    steady::time_point admit(std::uint64_t done, steady::time_point deadline) {
        const auto due = origin_ + nanoseconds(std::int64_t(double(done) * 1e9 / rate_));
        const auto now = steady::now();
        if (now < due) {
            std::this_thread::sleep_until(std::min(due, deadline));
            return steady::now();
        }
        if (now - due > burst_) origin_ += (now - due) - burst_;
        return now;
    }

private:
    double rate_;
    steady::time_point origin_;
    std::uint64_t batch_ = 1;
    nanoseconds burst_{0};
};

// ---- signals ----

std::atomic<bool> g_stop{false};  // child: stop recording (SIGTERM/SIGINT, or the parent died)
static_assert(std::atomic<bool>::is_always_lock_free, "used from a signal handler");

pid_t g_children[max_processes];  // parent: pids to forward signals to; 0 once reaped
volatile std::sig_atomic_t g_child_count = 0;
volatile std::sig_atomic_t g_signals = 0;  // parent: SIGTERM/SIGINT received so far
int g_wake_write = -1;                     // parent: self-pipe that wakes the collection loop

void on_child_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

/// Forwards the first SIGTERM/SIGINT to every child (they stop early and still report);
/// a second one kills them outright.
void on_parent_signal(int sig) {
    const int saved_errno = errno;
    g_signals = g_signals + 1;
    const int forward = g_signals == 1 ? sig : SIGKILL;
    for (int i = 0; i < g_child_count; ++i)
        if (g_children[i] > 0) ::kill(g_children[i], forward);
    if (g_wake_write >= 0) {
        const char byte = 0;
        [[maybe_unused]] const ssize_t n = ::write(g_wake_write, &byte, 1);
    }
    errno = saved_errno;
}

void set_handler(int sig, void (*handler)(int), const sigset_t& mask) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_mask = mask;
    sa.sa_flags = 0;  // no SA_RESTART: a blocked read or poll returns EINTR and rechecks
    ::sigaction(sig, &sa, nullptr);
}

/// Keeps the compiler from eliding an allocation whose memory is never read.
void benchmark_keep(char* p) { asm volatile("" : : "r"(p) : "memory"); }

// ---- the child: simulated plugins ----

/// Everything the recording threads read. Built once per child, before any thread starts, so the
/// hot loop only indexes prepared arrays: no string building, no allocation.
struct workload {
    const options* opt = nullptr;
    std::vector<std::string> plugin_text, op_text, table_text, tenant_text;
    std::vector<plugmon::Plugin> plugins;
    std::vector<plugmon::Name> op_names, table_names, tenant_names;
    std::vector<std::uint64_t> latency_ns;  // 2^latency_table_bits lognormal draws
    // statement texts: `statement_variants` literal variants of each shape, so the probe's
    // normalisation has something to fold (they share one fingerprint per shape)
    std::vector<std::string> statement_text;
    std::uint64_t error_threshold = 0;      // a query fails when (draw >> 11) < this
    bool busy_wait = false;
    steady::time_point start{};
    steady::time_point deadline = steady::time_point::max();
    bool has_deadline = false;
};

std::vector<std::string> numbered(const std::string& prefix, unsigned n) {
    std::vector<std::string> out;
    out.reserve(n);
    for (unsigned i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
    return out;
}

/// Interns every name through the probe (which creates this process's segment).
void build_workload(workload& w, const options& o, unsigned index) {
    w.opt = &o;
    std::string prefix = o.plugin_prefix;
    if (const auto at = prefix.find("{process}"); at != std::string::npos)
        prefix.replace(at, 9, std::to_string(index));
    w.plugin_text = numbered(prefix, o.plugins);
    w.op_text = o.ops;
    w.table_text = numbered("table-", o.tables);
    w.tenant_text = numbered("tenant-", o.tenants);
    for (const auto& s : w.plugin_text) w.plugins.emplace_back(s);
    for (const auto& s : w.op_text) w.op_names.emplace_back(s);
    for (const auto& s : w.table_text) w.table_names.emplace_back(s);
    for (const auto& s : w.tenant_text) w.tenant_names.emplace_back(s);

    const bool synthetic = o.mix == mix_kind::record || o.mix == mix_kind::mixed;
    const double median = double(o.query_ns > 0 ? o.query_ns : (synthetic ? default_record_ns : 0));
    std::mt19937_64 gen(splitmix64(o.seed ^ 0x6c6174656e6379ull));
    std::lognormal_distribution<double> spread(0.0, latency_sigma);
    w.latency_ns.resize(std::size_t(1) << latency_table_bits);
    for (auto& v : w.latency_ns) v = std::uint64_t(median * spread(gen));
    w.busy_wait = o.query_ns > 0;
    for (unsigned shape = 0; shape < o.statements; ++shape)
        for (unsigned v = 0; v < statement_variants; ++v)
            w.statement_text.push_back("SELECT id, total FROM invoices_" + std::to_string(shape) +
                                       "  WHERE id = " + std::to_string(1000 + v * 7) + " AND note = 'v" +
                                       std::to_string(v) + "'");
    for (const auto& text : o.statement_texts) w.statement_text.push_back(text);
    w.error_threshold = std::uint64_t(std::ldexp(o.error_ratio, 53));
}

/// What one thread (or, summed, one process) recorded.
struct tally {
    std::uint64_t max_record_ns = 0;  // --measure-latency: the slowest single query record call
    std::uint64_t queries = 0, errors = 0, executions = 0, execution_errors = 0, counters = 0,
                  pool_samples = 0, slow = 0;
    std::vector<std::uint64_t> plugin_events, plugin_queries, plugin_errors, tenant_queries;

    void size_for(const options& o) {
        plugin_events.assign(o.plugins, 0);
        plugin_queries.assign(o.plugins, 0);
        plugin_errors.assign(o.plugins, 0);
        tenant_queries.assign(o.tenants, 0);
    }
    /// Record calls that each produce exactly one event.
    std::uint64_t recorded() const { return queries + executions + counters + pool_samples; }
    void add(const tally& t) {
        max_record_ns = std::max(max_record_ns, t.max_record_ns);
        queries += t.queries;
        errors += t.errors;
        executions += t.executions;
        execution_errors += t.execution_errors;
        counters += t.counters;
        pool_samples += t.pool_samples;
        slow += t.slow;
        for (std::size_t i = 0; i < plugin_events.size(); ++i) {
            plugin_events[i] += t.plugin_events[i];
            plugin_queries[i] += t.plugin_queries[i];
            plugin_errors[i] += t.plugin_errors[i];
        }
        for (std::size_t i = 0; i < tenant_queries.size(); ++i) tenant_queries[i] += t.tenant_queries[i];
    }
};

enum query_style : int { by_string = 0, by_handle = 1, by_record = 2 };

/// One recording thread. `Mix` is a template parameter so each mode's loop is compiled without
/// per-event mode dispatch.
template <mix_kind Mix>
void run_worker(const workload& w, std::uint64_t seed, tally& out,
                std::atomic<std::uint64_t>* progress) {
    const options& o = *w.opt;
    fast_rng rng(seed);
    tally t;
    t.size_for(o);
    const auto nplugins = std::uint32_t(w.plugins.size());
    const auto nops = std::uint32_t(w.op_names.size());
    const auto ntables = std::uint32_t(w.table_names.size());
    const auto ntenants = std::uint32_t(w.tenant_names.size());
    const std::uint64_t limit = o.events > 0 ? o.events : std::numeric_limits<std::uint64_t>::max();
    pacer pace(o.rate, w.start);
    // How many queries run between looks at the stop flag, the deadline and the pacer.
    const std::uint64_t control_every =
        pace.enabled() ? pace.batch()
                       : (o.query_ns > 0 ? std::max<std::uint64_t>(1, 50'000 / o.query_ns) : 256);
    std::uint64_t n = 0;  // queries this thread recorded
    std::uint64_t next_control = 0;
    std::uint32_t tenant = 0;

    auto may_continue = [&]() -> bool {
        if (n >= limit) return false;
        if (n < next_control) return true;
        if (g_stop.load(std::memory_order_relaxed)) return false;
        if (pace.enabled()) {
            const auto now = pace.admit(n, w.deadline);
            if (now >= w.deadline || g_stop.load(std::memory_order_relaxed)) return false;
        } else if (w.has_deadline && steady::now() >= w.deadline) {
            return false;
        }
        next_control = n + control_every;
        return true;
    };

    auto finish = [&](plugmon::QueryScope& q, bool fail, std::uint64_t rows) {
        if (w.busy_wait) spin_for(w.latency_ns[rng.next() >> (64 - latency_table_bits)]);
        q.rows(rows);
        if (fail) q.fail();
    };

    auto query = [&](std::uint32_t p, int style) {
        // Counted before recording: a kill between the two leaves progress one ahead, never behind.
        if (progress) progress->store(t.recorded() + 1, std::memory_order_relaxed);
        const std::uint32_t op = rng.below(nops);
        const std::uint32_t tb = rng.below(ntables);
        const std::uint64_t x = rng.next();
        const bool fail = (x >> 11) < w.error_threshold;
        const std::uint64_t rows = x & 63;
        const auto t_begin = o.measure_latency ? steady::now() : steady::time_point{};
        const std::string_view statement =
            w.statement_text.empty() ? std::string_view{} : w.statement_text[rng.below(std::uint32_t(w.statement_text.size()))];
        if (style == by_string) {
            auto q = w.plugins[p].query(w.op_text[op], w.table_text[tb]);
            if (!statement.empty()) q.statement(statement);
            finish(q, fail, rows);
        } else if (style == by_handle) {
            auto q = w.plugins[p].query(w.op_names[op], w.table_names[tb]);
            if (!statement.empty()) q.statement(statement);
            finish(q, fail, rows);
        } else {
            auto d = nanoseconds(w.latency_ns[rng.next() >> (64 - latency_table_bits)]);
            if (o.slow_every != 0 && (t.queries + 1) % o.slow_every == 0) {
                d = o.slow_duration;
                ++t.slow;
            }
            w.plugins[p].record_query(w.op_text[op], w.table_text[tb], d, rows, !fail, statement);
        }
        if (o.measure_latency) {
            const auto ns = std::uint64_t(std::chrono::duration_cast<nanoseconds>(steady::now() - t_begin).count());
            t.max_record_ns = std::max(t.max_record_ns, ns);
        }
        ++t.queries;
        ++t.plugin_queries[p];
        ++t.plugin_events[p];
        if (fail) {
            ++t.errors;
            ++t.plugin_errors[p];
        }
        if (ntenants > 0) ++t.tenant_queries[tenant];
    };

    if constexpr (Mix != mix_kind::mixed) {
        constexpr int style = Mix == mix_kind::query   ? by_string
                              : Mix == mix_kind::macro ? by_handle
                                                       : by_record;
        while (may_continue()) {
            const std::uint32_t p = rng.below(nplugins);
            if (ntenants > 0) {
                tenant = rng.below(ntenants);
                plugmon::TenantScope scope{w.tenant_names[tenant]};
                query(p, style);
            } else {
                query(p, style);
            }
            ++n;
        }
    } else {
        // One execution of a plugin wraps a block of its queries; counters and pool samples
        // ride along at fixed intervals.
        std::vector<std::unique_ptr<char[]>> leaked;  // --leak-bytes: kept until the thread ends
        auto block = [&](std::uint32_t p) {
            auto run = w.plugins[p].execution();
            if (o.alloc_bytes != 0) {
                std::unique_ptr<char[]> scratch(new char[o.alloc_bytes]);
                benchmark_keep(scratch.get());
            }
            if (o.leak_bytes != 0 && p == 0) {
                leaked.emplace_back(new char[o.leak_bytes]);
                benchmark_keep(leaked.back().get());
            }
            ++t.executions;
            ++t.plugin_events[p];
            if ((rng.next() >> 11) < w.error_threshold) {
                run.fail();
                ++t.execution_errors;
            }
            for (unsigned j = 0; j < execution_every && may_continue(); ++j) {
                query(p, int(n % 3));
                ++n;
                if (n % count_every == 0) {
                    w.plugins[p].count("cache_miss");
                    ++t.counters;
                    ++t.plugin_events[p];
                }
                if (n % pool_every == 0) {
                    const std::uint32_t in_use = rng.below(pool_size + 1);
                    const std::uint32_t waiting = in_use == pool_size ? rng.below(4) : 0;
                    w.plugins[p].pool(in_use, pool_size - in_use, waiting);
                    ++t.pool_samples;
                    ++t.plugin_events[p];
                }
            }
        };
        while (may_continue()) {
            const std::uint32_t p = rng.below(nplugins);
            if (ntenants > 0) {
                tenant = rng.below(ntenants);
                plugmon::TenantScope scope{w.tenant_names[tenant]};
                block(p);
            } else {
                block(p);
            }
        }
    }
    out = std::move(t);
}

void run_thread(const workload& w, std::uint64_t seed, tally& out,
                std::atomic<std::uint64_t>* progress) {
    switch (w.opt->mix) {
    case mix_kind::query: run_worker<mix_kind::query>(w, seed, out, progress); break;
    case mix_kind::macro: run_worker<mix_kind::macro>(w, seed, out, progress); break;
    case mix_kind::record: run_worker<mix_kind::record>(w, seed, out, progress); break;
    case mix_kind::mixed: run_worker<mix_kind::mixed>(w, seed, out, progress); break;
    }
}

/// Words per thread in the progress file: one counter on its own 64-byte line.
constexpr std::size_t progress_stride = 8;

/// Maps this process's part of --progress-file (the parent sized it), or nullptr without one.
std::atomic<std::uint64_t>* map_progress(const options& o, unsigned index) {
    if (o.progress_file.empty()) return nullptr;
    const int fd = ::open(o.progress_file.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("--progress-file: cannot open " + o.progress_file);
    const std::size_t bytes = std::size_t(o.processes) * o.threads * progress_stride * 8;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("--progress-file: cannot map " + o.progress_file);
    return static_cast<std::atomic<std::uint64_t>*>(p) + std::size_t(index) * o.threads * progress_stride;
}

/// Blocks until the parent opens the start gate (closes its end) or a stop signal arrives.
void wait_for_gate(int gate_fd) {
    for (;;) {
        char byte;
        const ssize_t n = ::read(gate_fd, &byte, 1);
        if (n == 0) return;
        if (n < 0 && errno == EINTR) {
            if (g_stop.load(std::memory_order_relaxed)) return;
            continue;
        }
        if (n < 0) return;
    }
}

/// One simulated plugin process. Its first probe use happens here, after fork.
int child_main(const options& o, unsigned index, int report_fd, int gate_fd,
               const sigset_t& saved_mask, pid_t parent) {
    sigset_t none;
    sigemptyset(&none);
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    set_handler(SIGINT, on_child_signal, stops);
    set_handler(SIGTERM, on_child_signal, stops);
    ::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) g_stop.store(true);
    ::sigprocmask(SIG_SETMASK, &saved_mask, nullptr);

    const pid_t self = ::getpid();
    std::string failure;
    try {
        workload w;
        build_workload(w, o, index);
        std::atomic<std::uint64_t>* progress = map_progress(o, index);

        std::barrier<> sync(std::ptrdiff_t(o.threads) + 1);
        std::vector<tally> tallies(o.threads);
        std::vector<std::thread> threads;
        threads.reserve(o.threads);
        const std::uint64_t process_seed = splitmix64(o.seed + index);
        for (unsigned i = 0; i < o.threads; ++i) {
            try {
                threads.emplace_back([&w, &sync, &tallies, process_seed, i, progress] {
                    // Claim this thread's lane now, so the slow path stays out of the run.
                    (void)plugmon::detail::writer();
                    sync.arrive_and_wait();  // every lane claimed
                    sync.arrive_and_wait();  // start
                    run_thread(w, splitmix64(process_seed + i), tallies[i],
                               progress ? progress + std::size_t(i) * progress_stride : nullptr);
                });
            } catch (const std::system_error& e) {
                failure = "could not start thread " + std::to_string(i) + ": " + e.what();
                g_stop.store(true);
                for (unsigned k = i; k < o.threads; ++k) sync.arrive_and_drop();
                break;
            }
        }
        sync.arrive_and_wait();

        bool attached_at_start = false;
        if (o.wait_attached.count() > 0) {
            const auto until = steady::now() + o.wait_attached;
            for (;;) {
                if (plugmon::probe_stats().attached) {
                    attached_at_start = true;
                    break;
                }
                if (g_stop.load() || steady::now() >= until) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            if (!attached_at_start && !g_stop.load())
                std::fprintf(stderr,
                             "plugmon-loadgen: process %u (pid %d): no agent attached after %s; "
                             "recording anyway\n",
                             index, int(self), format_duration(o.wait_attached).c_str());
        }

        static constexpr char ready[] = "ready\n";
        write_all(report_fd, ready, sizeof ready - 1);
        wait_for_gate(gate_fd);
        ::close(gate_fd);

        w.start = steady::now();
        w.has_deadline = o.duration.count() > 0;
        if (w.has_deadline) w.deadline = w.start + o.duration;
        sync.arrive_and_wait();  // the threads read w.start and w.deadline after this
        for (auto& th : threads) th.join();
        const double seconds = std::chrono::duration<double>(steady::now() - w.start).count();
        const plugmon::ProbeStats stats = plugmon::probe_stats();

        tally total;
        total.size_for(o);
        for (const auto& t : tallies)
            if (t.plugin_events.size() == total.plugin_events.size()) total.add(t);

        nlohmann::ordered_json by_plugin = nlohmann::ordered_json::object();
        nlohmann::ordered_json queries_by_plugin = nlohmann::ordered_json::object();
        for (std::size_t i = 0; i < w.plugin_text.size(); ++i) {
            by_plugin[w.plugin_text[i]] = {{"recorded", total.plugin_events[i]},
                                           {"queries", total.plugin_queries[i]},
                                           {"errors", total.plugin_errors[i]}};
            queries_by_plugin[w.plugin_text[i]] = total.plugin_queries[i];
        }
        nlohmann::ordered_json j;
        j["pid"] = int(self);
        j["index"] = index;
        j["recorded"] = total.recorded();
        j["written"] = stats.events_written;
        j["dropped"] = stats.events_dropped;
        j["queries"] = total.queries;
        j["errors"] = total.errors;
        j["executions"] = total.executions;
        j["execution_errors"] = total.execution_errors;
        j["counters"] = total.counters;
        j["pool_samples"] = total.pool_samples;
        j["slow"] = total.slow;
        j["by_plugin"] = std::move(by_plugin);
        j["queries_by_plugin"] = std::move(queries_by_plugin);
        if (o.tenants > 0) {
            nlohmann::ordered_json by_tenant = nlohmann::ordered_json::object();
            for (std::size_t i = 0; i < w.tenant_text.size(); ++i)
                by_tenant[w.tenant_text[i]] = total.tenant_queries[i];
            j["queries_by_tenant"] = std::move(by_tenant);
        }
        j["attached"] = stats.attached;
        if (o.wait_attached.count() > 0) j["attached_at_start"] = attached_at_start;
        j["registrations"] = stats.registrations;
        j["lanes_in_use"] = stats.lanes_in_use;
        j["threads"] = o.threads;
        j["seconds"] = seconds;
        if (o.measure_latency) j["max_record_ns"] = total.max_record_ns;
        j["stopped_early"] = g_stop.load();
        if (!failure.empty()) j["error"] = failure;
        const std::string line = j.dump() + "\n";
        write_all(report_fd, line.data(), line.size());
        // Stay alive (after reporting) until an agent holds the segment, so what was recorded
        // before any agent existed is drained.
        const auto linger_until = steady::now() + o.linger_attached;
        while (o.linger_attached.count() > 0 && !plugmon::probe_stats().attached &&
               !g_stop.load() && steady::now() < linger_until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } catch (const std::exception& e) {
        failure = e.what();
    }
    ::close(report_fd);
    if (!failure.empty()) {
        std::fprintf(stderr, "plugmon-loadgen: process %u (pid %d): %s\n", index, int(self),
                     failure.c_str());
        return exit_child_failed;
    }
    return 0;  // back through main, so the probe hands its segment to the agent at exit
}

// ---- the parent: fork, gate, collect, report ----

struct child_state {
    unsigned index = 0;
    pid_t pid = -1;
    int fd = -1;  // read end of its report pipe; -1 once it closed
    std::string pending;
    bool ready = false;
    std::string raw;  // its report line, as received
    std::optional<nlohmann::json> report;
    std::string problem;  // why its report is unusable
    int status = 0;
};

void take_line(child_state& c, std::string_view line) {
    if (line == "ready") {
        c.ready = true;
    } else if (!line.empty() && line.front() == '{') {
        c.raw = std::string(line);
        try {
            c.report = nlohmann::json::parse(line);
        } catch (const std::exception& e) {
            c.problem = std::string("unreadable report: ") + e.what();
        }
    } else if (!line.empty()) {
        c.problem = "unexpected output on the report pipe: " + std::string(line.substr(0, 80));
    }
}

/// Reads what is available; returns false at end of file.
bool read_child(child_state& c) {
    char buf[65536];
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) {
        if (!c.pending.empty()) take_line(c, c.pending);
        c.pending.clear();
        return false;
    }
    c.pending.append(buf, std::size_t(n));
    std::size_t from = 0;
    for (std::size_t nl; (nl = c.pending.find('\n', from)) != std::string::npos; from = nl + 1)
        take_line(c, std::string_view(c.pending).substr(from, nl - from));
    c.pending.erase(0, from);
    return true;
}

std::uint64_t u64(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

double seconds_of(const nlohmann::json& j) {
    const auto it = j.find("seconds");
    return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string signal_text(int sig) {
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
}

int run(const options& o) {
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigset_t saved_mask;
    // Blocked across fork: a child must never run the parent's handler.
    ::sigprocmask(SIG_BLOCK, &stops, &saved_mask);

    int gate[2];
    if (::pipe2(gate, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "plugmon-loadgen: pipe: %s\n", std::strerror(errno));
        return 1;
    }
    if (!o.progress_file.empty()) {
        const int fd = ::open(o.progress_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ::ftruncate(fd, off_t(std::size_t(o.processes) * o.threads * 64)) != 0) {
            std::fprintf(stderr, "plugmon-loadgen: --progress-file %s: %s\n", o.progress_file.c_str(),
                         std::strerror(errno));
            return exit_usage;
        }
        ::close(fd);
    }
    std::vector<child_state> kids(o.processes);
    std::string start_failure;
    unsigned started = 0;
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t parent = ::getpid();
    for (unsigned i = 0; i < o.processes; ++i) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) {
            start_failure = "pipe for process " + std::to_string(i) + ": " + std::strerror(errno);
            break;
        }
        const pid_t pid = ::fork();
        if (pid < 0) {
            start_failure = "fork of process " + std::to_string(i) + ": " + std::strerror(errno);
            ::close(p[0]);
            ::close(p[1]);
            break;
        }
        if (pid == 0) {
            // Keep only this child's write end and the gate's read end: a sibling's pipe held
            // open here would hide that sibling's end of file from the parent.
            for (unsigned k = 0; k < i; ++k) ::close(kids[k].fd);
            ::close(p[0]);
            ::close(gate[1]);
            return child_main(o, i, p[1], gate[0], saved_mask, parent);
        }
        ::close(p[1]);
        kids[i].index = i;
        kids[i].pid = pid;
        kids[i].fd = p[0];
        g_children[i] = pid;
        g_child_count = int(i + 1);
        ++started;
    }
    ::close(gate[0]);
    kids.resize(started);

    int wake[2];
    if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) == 0) g_wake_write = wake[1];
    else wake[0] = -1;
    set_handler(SIGINT, on_parent_signal, stops);
    set_handler(SIGTERM, on_parent_signal, stops);
    if (o.print_pids) {
        for (const auto& c : kids) std::fprintf(stderr, "pid %d\n", int(c.pid));
        std::fflush(stderr);
    }
    bool gate_open = false;
    if (!start_failure.empty()) {
        std::fprintf(stderr, "plugmon-loadgen: %s; stopping the others\n", start_failure.c_str());
        for (const auto& c : kids) ::kill(c.pid, SIGTERM);
        ::close(gate[1]);
        gate_open = true;
    }
    ::sigprocmask(SIG_SETMASK, &saved_mask, nullptr);

    // Collect: open the start gate once every child is ready (or gone), read reports until
    // every report pipe reaches end of file.
    std::size_t open_pipes = kids.size();
    std::vector<pollfd> fds;
    std::vector<child_state*> owners;
    while (open_pipes > 0) {
        if (!gate_open) {
            const bool all_ready = std::all_of(kids.begin(), kids.end(),
                                               [](const child_state& c) { return c.ready || c.fd < 0; });
            if (all_ready || g_signals > 0) {
                ::close(gate[1]);
                gate_open = true;
            }
        }
        fds.clear();
        owners.clear();
        if (wake[0] >= 0) {
            fds.push_back(pollfd{wake[0], POLLIN, 0});
            owners.push_back(nullptr);
        }
        for (auto& c : kids) {
            if (c.fd < 0) continue;
            fds.push_back(pollfd{c.fd, POLLIN, 0});
            owners.push_back(&c);
        }
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "plugmon-loadgen: poll: %s\n", std::strerror(errno));
            break;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents == 0) continue;
            if (owners[i] == nullptr) {
                char drain[64];
                while (::read(wake[0], drain, sizeof drain) > 0) {
                }
                continue;
            }
            child_state& c = *owners[i];
            if (!read_child(c)) {
                ::close(c.fd);
                c.fd = -1;
                --open_pipes;
            }
        }
    }
    if (!gate_open) ::close(gate[1]);

    // Reap. Wait without reaping first, so a forwarded signal can never reach a recycled pid.
    for (auto& c : kids) {
        siginfo_t info;
        while (::waitid(P_PID, id_t(c.pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
        }
        ::sigprocmask(SIG_BLOCK, &stops, nullptr);
        g_children[c.index] = 0;
        while (::waitpid(c.pid, &c.status, 0) < 0 && errno == EINTR) {
        }
        ::sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
    }

    // Judge and report.
    bool ok = start_failure.empty();
    std::uint64_t recorded = 0, written = 0, dropped = 0, queries = 0;
    double seconds = 0;
    unsigned reported = 0;
    nlohmann::ordered_json killed = nlohmann::ordered_json::array();
    nlohmann::ordered_json failed = nlohmann::ordered_json::array();
    std::vector<std::string> status_text(kids.size());
    std::vector<std::string> messages;
    for (std::size_t i = 0; i < kids.size(); ++i) {
        child_state& c = kids[i];
        std::string& st = status_text[i];
        std::string reason;
        if (WIFSIGNALED(c.status)) {
            const int sig = WTERMSIG(c.status);
            st = signal_text(sig);
            killed.push_back({{"index", c.index}, {"pid", int(c.pid)}, {"signal", sig}});
            if (o.allow_kill)
                messages.push_back("process " + std::to_string(c.index) + " (pid " +
                                   std::to_string(c.pid) + ") " + st + " (allowed)");
            else
                reason = st;
        } else if (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0) {
            reason = st = "exited with status " + std::to_string(WEXITSTATUS(c.status));
        }
        if (c.report) {
            const auto& r = *c.report;
            const std::uint64_t rec = u64(r, "recorded"), wr = u64(r, "written"), dr = u64(r, "dropped");
            recorded += rec;
            written += wr;
            dropped += dr;
            queries += u64(r, "queries");
            seconds = std::max(seconds, seconds_of(r));
            ++reported;
            if (rec != wr + dr) {
                const std::string m = "recorded " + std::to_string(rec) + " but the probe counts " +
                                      std::to_string(wr) + " written + " + std::to_string(dr) +
                                      " dropped";
                if (reason.empty()) reason = m;
                if (st.empty()) st = "MISMATCH";
            }
        } else if (!WIFSIGNALED(c.status)) {
            const std::string m = c.problem.empty() ? "sent no report" : c.problem;
            if (reason.empty()) reason = m;
            if (st.empty()) st = "no report";
        }
        if (st.empty()) st = (c.report && c.report->value("stopped_early", false)) ? "ok (stopped)" : "ok";
        if (!reason.empty()) {
            ok = false;
            failed.push_back({{"index", c.index}, {"pid", int(c.pid)}, {"reason", reason}});
            messages.push_back("process " + std::to_string(c.index) + " (pid " +
                               std::to_string(c.pid) + "): " + reason);
        }
    }
    const double total_rate = seconds > 0 ? double(recorded) / seconds : 0.0;
    const double drop_pct = recorded > 0 ? 100.0 * double(dropped) / double(recorded) : 0.0;

    if (o.json) {
        if (!o.quiet)
            for (const auto& c : kids)
                if (c.report) std::printf("%s\n", c.raw.c_str());
        nlohmann::ordered_json total;
        total["processes"] = kids.size();
        total["reported"] = reported;
        total["recorded"] = recorded;
        total["written"] = written;
        total["dropped"] = dropped;
        total["queries"] = queries;
        total["drop_ratio"] = recorded > 0 ? double(dropped) / double(recorded) : 0.0;
        total["seconds"] = seconds;
        total["events_per_second"] = total_rate;
        total["killed"] = std::move(killed);
        total["failed"] = std::move(failed);
        total["signals"] = int(g_signals);
        total["ok"] = ok;
        std::printf("%s\n", nlohmann::ordered_json{{"total", std::move(total)}}.dump().c_str());
    } else {
        std::printf("%7s %8s %14s %14s %12s %8s %14s  %s\n", "process", "pid", "recorded", "written",
                    "dropped", "drop %", "events/s", "status");
        if (!o.quiet) {
            for (std::size_t i = 0; i < kids.size(); ++i) {
                const child_state& c = kids[i];
                if (c.report) {
                    const auto& r = *c.report;
                    const std::uint64_t rec = u64(r, "recorded"), dr = u64(r, "dropped");
                    const double s = seconds_of(r);
                    std::printf("%7u %8d %14llu %14llu %12llu %7.3f%% %14.0f  %s\n", c.index,
                                int(c.pid), (unsigned long long)rec,
                                (unsigned long long)u64(r, "written"), (unsigned long long)dr,
                                rec > 0 ? 100.0 * double(dr) / double(rec) : 0.0,
                                s > 0 ? double(rec) / s : 0.0, status_text[i].c_str());
                } else {
                    std::printf("%7u %8d %14s %14s %12s %8s %14s  %s\n", c.index, int(c.pid), "-",
                                "-", "-", "-", "-", status_text[i].c_str());
                }
            }
        }
        std::printf("%7s %8s %14llu %14llu %12llu %7.3f%% %14.0f  %s\n", "total", "",
                    (unsigned long long)recorded, (unsigned long long)written,
                    (unsigned long long)dropped, drop_pct, total_rate, ok ? "ok" : "FAILED");
    }
    std::fflush(stdout);
    for (const auto& m : messages) std::fprintf(stderr, "plugmon-loadgen: %s\n", m.c_str());
    if (!ok) std::fprintf(stderr, "plugmon-loadgen: FAILED\n");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    std::string duration_text = "0";
    std::string wait_text = "0";
    std::string linger_text = "0";

    CLI::App app{"Simulated plugins recording queries through the real probe. Forks --processes "
                 "children; each runs --threads recording threads, then reports what it recorded "
                 "and what its probe counted (written + dropped must equal recorded).",
                 "plugmon-loadgen"};
    app.footer(
        "Durations: a number with ns, us, ms, s, m or h (a bare number is seconds); 0 = unlimited.\n"
        "At least one of --events and --duration must bound the run.\n"
        "Mixes: query  = plugin.query(op, table) with runtime string names;\n"
        "       macro  = plugin.query(Name, Name) with pre-interned handles (the PLUGMON_QUERY path);\n"
        "       record = record_query() with a synthetic lognormal duration (no waiting);\n"
        "       mixed  = the three in turn, each 100 queries inside an execution() scope, plus\n"
        "                count(\"cache_miss\") every 10 queries and a pool() sample every 1000.\n"
        "The parent never uses the probe. SIGTERM/SIGINT: forwarded to the children, which stop\n"
        "early and still report; a second signal kills them.\n"
        "Exit status: 0 every child exited 0 and recorded == written + dropped; 1 otherwise (a child\n"
        "killed by a signal counts as a failure unless --allow-kill); 2 bad arguments.");

    const CLI::Validator duration_validator(
        [](std::string& s) {
            return parse_duration(s) ? std::string{} : "not a duration (like 10s, 500ms, 0): " + s;
        },
        "DURATION");
    app.add_option("--processes", o.processes, "plugin processes to fork")
        ->check(CLI::Range(1u, max_processes))
        ->capture_default_str();
    app.add_option("--threads", o.threads, "recording threads per process")
        ->check(CLI::Range(1u, max_threads))
        ->capture_default_str();
    app.add_option("--events", o.events,
                   "queries per thread (0 = unlimited; mixed adds its executions, counters and "
                   "pool samples on top)")
        ->capture_default_str();
    app.add_option("--duration", duration_text, "how long to record, e.g. 10s or 500ms (0 = unlimited)")
        ->check(duration_validator)
        ->capture_default_str();
    app.add_option("--rate", o.rate, "queries per second per thread (0 = flat out)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--plugins", o.plugins, "simulated plugins per process")
        ->check(CLI::Range(1u, max_names))
        ->capture_default_str();
    app.add_option("--plugin-prefix", o.plugin_prefix, "plugin names are <prefix>0, <prefix>1, ...")
        ->capture_default_str();
    app.add_option("--tables", o.tables, "tables, named table-0, table-1, ...")
        ->check(CLI::Range(1u, max_names))
        ->capture_default_str();
    app.add_option("--tenants", o.tenants,
                   "tenants, named tenant-0, ...; each query (mixed: each execution) runs in a "
                   "random tenant's scope (0 = no tenant scope)")
        ->check(CLI::Range(0u, max_names))
        ->capture_default_str();
    app.add_option("--ops", o.ops, "operations, comma-separated")
        ->delimiter(',')
        ->default_str("SELECT,INSERT,UPDATE,DELETE");
    app.add_option("--statements", o.statements,
                   "statement shapes attached to queries, each in 4 literal variants (0 = none)")
        ->check(CLI::Range(0u, 100000u));
    app.add_option("--statement-text", o.statement_texts,
                   "a statement attached verbatim to queries, beside the --statements shapes "
                   "(repeatable; e.g. text with markup for the dashboard's tests)");
    app.add_option("--slow-every", o.slow_every,
                   "record mix: every Nth query of a thread lasts --slow-duration (0 = never)");
    std::string slow_text = "2s";
    app.add_option("--slow-duration", slow_text, "duration of the --slow-every queries (default 2s)");
    app.add_option("--alloc-bytes", o.alloc_bytes,
                   "mixed: bytes each execution allocates and frees (heap accounting; plugmon::alloc is linked)");
    app.add_option("--leak-bytes", o.leak_bytes,
                   "mixed: bytes each execution of the first plugin allocates and never frees (a leak)");
    app.add_option("--error-ratio", o.error_ratio, "fraction of queries (and executions) marked failed")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    const std::map<std::string, mix_kind> mixes{{"query", mix_kind::query},
                                                {"macro", mix_kind::macro},
                                                {"record", mix_kind::record},
                                                {"mixed", mix_kind::mixed}};
    std::string mix_text = "query";
    app.add_option("--mix", mix_text, "what the threads record")
        ->check(CLI::IsMember({"query", "macro", "record", "mixed"}))
        ->capture_default_str();
    app.add_option("--query-ns", o.query_ns,
                   "simulated query latency: a busy-wait inside each timed query, lognormal around "
                   "this median (record and mixed also use it as the synthetic duration; 0 = no "
                   "wait, record's median is then 100us)")
        ->check(CLI::Range(std::uint64_t(0), std::uint64_t(10'000'000'000)))
        ->capture_default_str();
    app.add_option("--linger-attached", linger_text,
                   "after recording and reporting, stay alive up to this long until an agent "
                   "holds the segment (0 = exit at once)")
        ->check(duration_validator);
    app.add_option("--progress-file", o.progress_file,
                   "a file the parent creates, where each thread publishes how many events it "
                   "has started to record (u64 at byte (process * threads + thread) * 64); for "
                   "tests that kill children");
    app.add_option("--wait-attached", wait_text,
                   "before recording, wait up to this long for the probe to attach to an agent "
                   "(0 = don't wait; on timeout, say so and record anyway)")
        ->check(duration_validator)
        ->capture_default_str();
    app.add_option("--seed", o.seed, "random seed (runs with the same seed make the same choices)")
        ->capture_default_str();
    app.add_flag("--json", o.json, "machine-readable output: each child's JSON line, then {\"total\":...}");
    app.add_flag("--quiet", o.quiet, "print only the total");
    app.add_flag("--allow-kill", o.allow_kill, "children killed by a signal do not fail the run");
    app.add_flag("--print-pids", o.print_pids, "print \"pid <pid>\" per child on stderr at start");
    app.add_flag("--measure-latency", o.measure_latency,
                 "time every query record call (two extra clock reads) and report the slowest as "
                 "max_record_ns (includes any --query-ns wait)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : exit_usage;
    }

    o.mix = mixes.at(mix_text);
    o.duration = *parse_duration(duration_text);
    if (const auto d = parse_duration(slow_text); d && d->count() > 0) {
        o.slow_duration = *d;
    } else {
        std::fprintf(stderr, "plugmon-loadgen: --slow-duration: \"%s\" is not a positive duration\n", slow_text.c_str());
        return 2;
    }
    o.wait_attached = *parse_duration(wait_text);
    o.linger_attached = *parse_duration(linger_text);
    if (o.events == 0 && o.duration.count() == 0) {
        std::fprintf(stderr,
                     "plugmon-loadgen: --events and --duration are both 0 (unlimited); give at "
                     "least one to bound the run\n");
        return exit_usage;
    }
    if (o.ops.empty()) {
        std::fprintf(stderr, "plugmon-loadgen: --ops: the list is empty\n");
        return exit_usage;
    }
    for (const auto& op : o.ops) {
        if (op.empty()) {
            std::fprintf(stderr, "plugmon-loadgen: --ops: empty operation name in the list\n");
            return exit_usage;
        }
    }
    return run(o);
}
