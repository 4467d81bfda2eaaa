// The probe API a plugin links (CMake target plugmon::probe). The recording path is inline here:
// read the clock, write one 64-byte slot into this thread's lane, publish with one release store.
#pragma once

#include <plugmon/layout.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif
#include <time.h>

#define PLUGMON_ALWAYS_INLINE inline __attribute__((always_inline))
#define PLUGMON_LIKELY(x) __builtin_expect(!!(x), 1)
#define PLUGMON_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace plugmon {

namespace detail {

/// Per-thread interning cache: direct-mapped on the caller's string address, confirmed by
/// comparing the bytes with the interned copy, so a reused buffer never returns a stale id.
struct name_cache_entry {
    const char* ptr;
    const char* text;  // the interned copy (process memory that is never freed)
    std::uint32_t len;
    std::uint32_t id;
};
inline constexpr std::size_t name_cache_size = 64;
inline constexpr std::size_t name_cache_ways = 4;  // 16 sets of 4
static_assert(name_cache_size / name_cache_ways == 16, "the set index takes the hash's top 4 bits");

/// Per-thread statement caches, both 4-way set associative with the same entry: `key` is 0 in an
/// empty entry (no key is 0). The text cache is keyed on a hash of the raw text, so a text seen
/// before costs one hash of it; the shape cache on the text's shape key (literals left out), so
/// a text that differs from one seen before only in its literals costs one scan of it.
struct statement_cache_entry {
    std::uint64_t key;
    std::uint32_t id;
    std::uint32_t reserved;
};
inline constexpr std::size_t statement_cache_ways = 4;
inline constexpr std::size_t statement_text_sets = 64;  // 256 texts; the set: the hash's top 6 bits
inline constexpr std::size_t statement_shape_sets = 128;  // 512 shapes; the key's top 7 bits
static_assert(statement_text_sets == 64 && statement_shape_sets == 128, "set index widths");

/// A thread's writing state: private to the thread, allocated in the probe's slow path.
struct lane_writer {
    layout::slot* slots;
    layout::lane_header* hdr;
    std::uint64_t mask;
    std::uint64_t capacity;
    std::uint64_t head;         // private copy of hdr->head (this thread is its only writer)
    std::uint64_t cached_tail;  // last tail seen; refreshed only when the lane looks full
    std::uint64_t dropped;      // private copy of hdr->dropped_full
    bool shared;                // true: no per-thread lane was free, use the shared lane
    name_cache_entry cache[name_cache_size];
    statement_cache_entry texts[statement_text_sets * statement_cache_ways];
    statement_cache_entry shapes[statement_shape_sets * statement_cache_ways];
};

// Initial-exec TLS: one instruction to reach, no wrapper call, even from a shared library.
extern __thread lane_writer* tls_writer __attribute__((tls_model("initial-exec")));
extern __thread std::uint32_t tls_tenant __attribute__((tls_model("initial-exec")));
/// The plugin whose execution() scope is running on this thread (0: none). Allocation
/// accounting (plugmon::alloc) charges heap use to it.
extern __thread std::uint32_t tls_plugin __attribute__((tls_model("initial-exec")));
extern bool clock_is_tsc;  // set once, before any lane is handed out

/// Slow path: claims a lane for this thread (creating the segment on first use). Thread-safe;
/// takes the runtime's mutex briefly; allocates the runtime once per process and a writer once
/// per thread. nullptr when the probe is disabled, no segment could be created or memory ran out
/// (then the event is counted as dropped in this process, and the thread's next event tries
/// again). Never throws.
lane_writer* acquire_writer() noexcept;
/// The shared lane's claim/publish path (multi-producer).
void emit_shared(const layout::slot& s) noexcept;
/// An event recorded without a writer: counted as dropped (relaxed atomic add, in static storage
/// so that it counts even when the runtime could not be built). Never throws.
void count_unavailable() noexcept;
/// Interns a name process-wide (mutex; called on cache misses and by handles). Never throws.
std::uint32_t intern_slow(std::string_view name, const char** text) noexcept;
/// A cache miss: interns the name and puts it first in its cache set (the others move down one).
std::uint32_t intern_miss(name_cache_entry* set, std::string_view name) noexcept;
/// Normalises a statement (literals to ?, canonical spacing), fingerprints it and interns the
/// normalised text process-wide. Returns its id, or 0 when the table is full or the text holds
/// no token. Lock-free when the text's shape is known to the process; else takes the interning
/// lock. Never throws.
std::uint32_t intern_statement(std::string_view sql) noexcept;
/// A text-cache miss: finds the statement by the text's shape (this thread's shape cache, then the
/// process's shape table, then intern_statement's slow path) and caches `text_hash` -> id in
/// `set`, the text cache set it maps to. Never throws.
std::uint32_t statement_miss(lane_writer* w, statement_cache_entry* set, std::uint64_t text_hash,
                             std::string_view sql) noexcept;

PLUGMON_ALWAYS_INLINE std::uint64_t now() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    if (PLUGMON_LIKELY(clock_is_tsc)) return __rdtsc();
#endif
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

PLUGMON_ALWAYS_INLINE lane_writer* writer() noexcept {
    lane_writer* w = tls_writer;
    if (PLUGMON_UNLIKELY(w == nullptr)) w = acquire_writer();
    return w;
}

template <class T>
PLUGMON_ALWAYS_INLINE T load_unaligned(const char* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

/// Byte equality of two n-byte strings. Names are short: up to 16 bytes it is two overlapping
/// loads per side and no call (the library memcmp was the largest cost of a cache hit).
PLUGMON_ALWAYS_INLINE bool same_bytes(const char* a, const char* b, std::size_t n) noexcept {
    if (PLUGMON_LIKELY(n >= 8 && n <= 16))
        return ((load_unaligned<std::uint64_t>(a) ^ load_unaligned<std::uint64_t>(b)) |
                (load_unaligned<std::uint64_t>(a + n - 8) ^
                 load_unaligned<std::uint64_t>(b + n - 8))) == 0;
    if (n >= 4 && n < 8)
        return ((load_unaligned<std::uint32_t>(a) ^ load_unaligned<std::uint32_t>(b)) |
                (load_unaligned<std::uint32_t>(a + n - 4) ^
                 load_unaligned<std::uint32_t>(b + n - 4))) == 0;
    if (n < 4) return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
    return std::memcmp(a, b, n) == 0;
}

PLUGMON_ALWAYS_INLINE bool cache_hit(const name_cache_entry& e, std::string_view name) noexcept {
    return e.ptr == name.data() && e.len == name.size() &&
           same_bytes(e.text, name.data(), name.size());
}

/// Interns through this thread's cache: 4-way set associative on the string's address (literals
/// a few bytes apart must not evict each other), so the names a thread uses stay cached. Never
/// blocks on a hit; takes the interning lock on a miss.
PLUGMON_ALWAYS_INLINE std::uint32_t intern_cached(lane_writer* w, std::string_view name) noexcept {
    if (PLUGMON_UNLIKELY(name.empty())) return layout::name_empty;
    const auto key = std::uint64_t(reinterpret_cast<std::uintptr_t>(name.data())) ^ name.size();
    name_cache_entry* set =
        &w->cache[((key * layout::fibonacci_multiplier) >> 60) * name_cache_ways];
    if (PLUGMON_LIKELY(cache_hit(set[0], name))) return set[0].id;
    for (std::size_t i = 1; i < name_cache_ways; ++i)
        if (cache_hit(set[i], name)) return set[i].id;
    return intern_miss(set, name);
}

/// A 64-bit hash of raw text, only to recognise a text seen before (never 0). Four independent
/// lanes of 8-byte words, so the multiplies overlap: about 32 bytes every 5 cycles.
PLUGMON_ALWAYS_INLINE std::uint64_t text_hash(const char* p, std::size_t n) noexcept {
    constexpr std::uint64_t k = 0x9fb21c651e98df25ull;
    const auto round = [](std::uint64_t acc, std::uint64_t word) {
        acc = (acc ^ word) * k;
        return (acc << 31) | (acc >> 33);
    };
    std::uint64_t a = n ^ layout::fibonacci_multiplier, b = 0x243f6a8885a308d3ull,
                  c = 0x13198a2e03707344ull, d = 0xa4093822299f31d0ull;
    const char* const end = p + n;
    for (; end - p >= 32; p += 32) {
        a = round(a, load_unaligned<std::uint64_t>(p));
        b = round(b, load_unaligned<std::uint64_t>(p + 8));
        c = round(c, load_unaligned<std::uint64_t>(p + 16));
        d = round(d, load_unaligned<std::uint64_t>(p + 24));
    }
    for (; end - p >= 8; p += 8) a = round(a, load_unaligned<std::uint64_t>(p));
    if (p < end) {  // the last 1..7 bytes: the text's last word when it has one, else its bytes
        std::uint64_t tail = 0;
        if (n >= 8) {
            tail = load_unaligned<std::uint64_t>(end - 8);
        } else {
            std::memcpy(&tail, p, std::size_t(end - p));
        }
        b = round(b, tail);
    }
    std::uint64_t h =
        a ^ ((b << 16) | (b >> 48)) ^ ((c << 32) | (c >> 32)) ^ ((d << 48) | (d >> 16));
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 29;
    return h | 1;
}

/// A statement's id through this thread's caches: one hash of the text and no lock when the text
/// was seen, one scan of it and no lock when a text of the same shape was.
/// Looks `key` up in one set of a statement cache; a hit below way 0 moves one way up, so
/// entries in use rise above one-off ones. Both caches (text and shape) use it.
PLUGMON_ALWAYS_INLINE bool cache_find(statement_cache_entry* set, std::uint64_t key,
                                      std::uint32_t& id) noexcept {
    if (PLUGMON_LIKELY(set[0].key == key)) {
        id = set[0].id;
        return true;
    }
    for (std::size_t i = 1; i < statement_cache_ways; ++i) {
        if (set[i].key == key) {
            const statement_cache_entry hit = set[i];
            set[i] = set[i - 1];
            set[i - 1] = hit;
            id = hit.id;
            return true;
        }
    }
    return false;
}

PLUGMON_ALWAYS_INLINE std::uint32_t statement_cached(lane_writer* w,
                                                     std::string_view sql) noexcept {
    if (PLUGMON_UNLIKELY(sql.empty())) return 0;
    const std::uint64_t h = text_hash(sql.data(), sql.size());
    statement_cache_entry* set = &w->texts[(h >> 58) * statement_cache_ways];
    std::uint32_t id = 0;
    if (PLUGMON_LIKELY(cache_find(set, h, id))) return id;
    return statement_miss(w, set, h, sql);
}

/// Writes one event. Wait-free on a per-thread lane: no lock, no system call, no allocation.
/// A full lane drops the event and counts the drop in the segment.
PLUGMON_ALWAYS_INLINE void emit(lane_writer* w, layout::event_kind kind, std::uint8_t flags,
                                std::uint32_t plugin, std::uint32_t op, std::uint32_t table,
                                std::uint32_t tenant, std::uint32_t aux, std::uint64_t start,
                                std::uint64_t duration, std::uint64_t value,
                                std::uint64_t value2) noexcept {
    if (PLUGMON_UNLIKELY(w == nullptr)) {
        count_unavailable();
        return;
    }
    if (PLUGMON_UNLIKELY(w->shared)) {
        layout::slot s{0,     std::uint8_t(kind), flags, 0,     plugin, op, table, tenant, aux, 0,
                       start, duration,           value, value2};
        emit_shared(s);
        return;
    }
    const std::uint64_t h = w->head;
    if (PLUGMON_UNLIKELY(h - w->cached_tail >= w->capacity)) {
        // acquire: pairs with the agent's tail.store(release) after it finished reading slots.
        w->cached_tail = w->hdr->tail.load(std::memory_order_acquire);
        if (h - w->cached_tail >= w->capacity) {
            w->hdr->dropped_full.store(++w->dropped, std::memory_order_relaxed);
            return;
        }
    }
    layout::slot* s = &w->slots[h & w->mask];
    s->seq = std::uint32_t(h + 1);
    s->kind = std::uint8_t(kind);
    s->flags = flags;
    s->reserved = 0;
    s->plugin = plugin;
    s->op = op;
    s->table = table;
    s->tenant = tenant;
    s->aux = aux;
    s->pad = 0;
    s->start = start;
    s->duration = duration;
    s->value = value;
    s->value2 = value2;
    w->head = h + 1;
    // release: pairs with the agent's head.load(acquire) before it reads the slot.
    w->hdr->head.store(h + 1, std::memory_order_release);
}

std::uint64_t thread_cpu_ns() noexcept;

/// Allocation accounting (used by the plugmon::alloc library): charges `allocated` and `freed`
/// bytes to `plugin`. Lock-free (relaxed atomic adds per plugin), never allocates or throws; ids
/// beyond the name table are charged to __overflow__. The probe's helper thread reports the
/// totals once a second as resource events.
void alloc_account(std::uint32_t plugin, std::uint64_t allocated, std::uint64_t freed) noexcept;
/// The totals charged to a plugin so far; false for an id out of range.
bool alloc_totals(std::uint32_t plugin, std::uint64_t& allocated, std::uint64_t& freed) noexcept;

}  // namespace detail

/// An interned name (operation, table, counter or tenant). Building one takes the interning lock;
/// using one costs nothing. Thread-safe; never throws.
class Name {
public:
    explicit Name(std::string_view text) noexcept : id_(detail::intern_slow(text, nullptr)) {}
    std::uint32_t id() const noexcept { return id_; }

private:
    std::uint32_t id_;
};

/// A pre-interned statement: normalised and fingerprinted once, free to attach to a query.
/// Thread-safe; never throws.
class Statement {
public:
    explicit Statement(std::string_view sql) noexcept : id_(detail::intern_statement(sql)) {}
    std::uint32_t id() const noexcept { return id_; }

private:
    std::uint32_t id_;
};

/// Times one query from construction to destruction and records it then. Not copyable; lives on
/// the recording thread's stack. Recording never blocks, allocates or throws.
class QueryScope {
public:
    PLUGMON_ALWAYS_INLINE QueryScope(detail::lane_writer* w, std::uint32_t plugin, std::uint32_t op,
                                     std::uint32_t table) noexcept
        : w_(w), plugin_(plugin), op_(op), table_(table), tenant_(detail::tls_tenant),
          start_(detail::now()) {}
    QueryScope(const QueryScope&) = delete;
    QueryScope& operator=(const QueryScope&) = delete;
    PLUGMON_ALWAYS_INLINE ~QueryScope() {
        const std::uint64_t end = detail::now();
        detail::emit(w_, layout::event_kind::query, flags_, plugin_, op_, table_, tenant_,
                     statement_, start_, end - start_, rows_, 0);
    }
    /// Rows returned or affected.
    void rows(std::uint64_t n) noexcept { rows_ = n; }
    /// Marks the query as failed (status="error").
    void fail() noexcept { flags_ |= layout::flag_error; }
    /// Attaches the statement text (for slow queries and per-statement totals). The probe
    /// normalises it (literals become ?) once per distinct text; after that it costs one pass
    /// over the text per call. Never blocks on a known text; never throws.
    void statement(std::string_view sql) noexcept {
        if (w_ != nullptr) statement_ = detail::statement_cached(w_, sql);
    }
    /// Attaches a pre-interned statement (no cost at all).
    void statement(const Statement& s) noexcept { statement_ = s.id(); }

private:
    detail::lane_writer* w_;
    std::uint32_t plugin_, op_, table_, tenant_;
    std::uint32_t statement_ = 0;
    std::uint64_t start_;
    std::uint64_t rows_ = 0;
    std::uint8_t flags_ = 0;
};

/// Times one plugin execution: wall time and the thread's CPU time (one clock_gettime of the
/// thread CPU clock at each end, which may be a system call: use it per plugin call, not per
/// query). An exception leaving the scope marks the execution as failed.
class ExecutionScope {
public:
    ExecutionScope(detail::lane_writer* w, std::uint32_t plugin) noexcept
        : w_(w), plugin_(plugin), tenant_(detail::tls_tenant), outer_plugin_(detail::tls_plugin),
          exceptions_(std::uncaught_exceptions()), cpu_start_(detail::thread_cpu_ns()),
          start_(detail::now()) {
        detail::tls_plugin = plugin;
    }
    ExecutionScope(const ExecutionScope&) = delete;
    ExecutionScope& operator=(const ExecutionScope&) = delete;
    ~ExecutionScope() {
        const std::uint64_t end = detail::now();
        const std::uint64_t cpu = detail::thread_cpu_ns() - cpu_start_;
        if (std::uncaught_exceptions() > exceptions_) flags_ |= layout::flag_error;
        detail::tls_plugin = outer_plugin_;
        detail::emit(w_, layout::event_kind::execution, flags_, plugin_, 0, 0, tenant_, 0, start_,
                     end - start_, 0, cpu);
    }
    /// Marks the execution as failed.
    void fail() noexcept { flags_ |= layout::flag_error; }

private:
    detail::lane_writer* w_;
    std::uint32_t plugin_, tenant_, outer_plugin_;
    int exceptions_;
    std::uint64_t cpu_start_;
    std::uint64_t start_;
    std::uint8_t flags_ = 0;
};

/// A plugin's handle. Construction interns the name once (takes the interning lock); copies are
/// cheap. Every member is thread-safe, never blocks, never throws, and allocates only the first
/// time a thread records (its lane) or meets a new name (interning).
class Plugin {
public:
    explicit Plugin(std::string_view name) noexcept : id_(detail::intern_slow(name, nullptr)) {}

    /// Starts timing a query; the returned scope records it when destroyed.
    PLUGMON_ALWAYS_INLINE QueryScope query(std::string_view op,
                                           std::string_view table) const noexcept {
        detail::lane_writer* w = detail::writer();
        if (PLUGMON_UNLIKELY(w == nullptr)) return QueryScope(nullptr, id_, 0, 0);
        return QueryScope(w, id_, detail::intern_cached(w, op), detail::intern_cached(w, table));
    }
    /// Starts timing a query named by pre-interned handles (no lookup at all).
    PLUGMON_ALWAYS_INLINE QueryScope query(const Name& op, const Name& table) const noexcept {
        return QueryScope(detail::writer(), id_, op.id(), table.id());
    }
    /// Records a query timed by the caller.
    void record_query(std::string_view op, std::string_view table,
                      std::chrono::nanoseconds duration, std::uint64_t rows = 0, bool ok = true,
                      std::string_view statement = {}) const noexcept {
        detail::lane_writer* w = detail::writer();
        const std::uint32_t o = w ? detail::intern_cached(w, op) : 0;
        const std::uint32_t t = w ? detail::intern_cached(w, table) : 0;
        const std::uint32_t st = w ? detail::statement_cached(w, statement) : 0;
        const std::uint64_t ns = duration.count() > 0 ? std::uint64_t(duration.count()) : 0;
        detail::emit(w, layout::event_kind::query,
                     std::uint8_t(layout::flag_duration_ns | (ok ? 0 : layout::flag_error)), id_, o,
                     t, detail::tls_tenant, st, detail::now(), ns, rows, 0);
    }
    /// Times one execution of the plugin (wall and thread CPU time).
    ExecutionScope execution() const noexcept { return ExecutionScope(detail::writer(), id_); }
    /// Adds n to the plugin's named event counter.
    void count(std::string_view event, std::uint64_t n = 1) const noexcept {
        detail::lane_writer* w = detail::writer();
        const std::uint32_t e = w ? detail::intern_cached(w, event) : 0;
        detail::emit(w, layout::event_kind::counter, 0, id_, e, 0, detail::tls_tenant, 0, 0, 0, n,
                     0);
    }
    /// Adds n to a counter named by a pre-interned handle.
    void count(const Name& event, std::uint64_t n = 1) const noexcept {
        detail::emit(detail::writer(), layout::event_kind::counter, 0, id_, event.id(), 0,
                     detail::tls_tenant, 0, 0, 0, n, 0);
    }
    /// Records a connection-pool sample.
    void pool(std::uint32_t in_use, std::uint32_t idle, std::uint32_t waiting) const noexcept {
        detail::emit(detail::writer(), layout::event_kind::pool, 0, id_, 0, 0, 0, 0, 0, 0,
                     std::uint64_t(in_use) | (std::uint64_t(idle) << 32), waiting);
    }
    std::uint32_t id() const noexcept { return id_; }

private:
    std::uint32_t id_;
};

/// Sets this thread's tenant label for everything recorded until the scope ends (scopes nest).
/// Never blocks on a known name (per-thread cache); never throws.
class TenantScope {
public:
    explicit TenantScope(std::string_view tenant) noexcept : saved_(detail::tls_tenant) {
        detail::lane_writer* w = detail::writer();  // its cache: no lock once the name is known
        detail::tls_tenant = w ? detail::intern_cached(w, tenant) : layout::name_empty;
    }
    explicit TenantScope(const Name& tenant) noexcept : saved_(detail::tls_tenant) {
        detail::tls_tenant = tenant.id();
    }
    TenantScope(const TenantScope&) = delete;
    TenantScope& operator=(const TenantScope&) = delete;
    ~TenantScope() { detail::tls_tenant = saved_; }

private:
    std::uint32_t saved_;
};

/// What this process's plugin code recorded. events_written + events_dropped = events recorded.
struct ProbeStats {
    bool attached = false;             ///< registered with a running agent right now
    std::uint64_t events_written = 0;  ///< published into the segment
    std::uint64_t events_dropped = 0;  ///< lane full, or no segment
    std::uint64_t lanes_in_use = 0;
    std::uint64_t registrations =
        0;  ///< successful registrations with an agent (re-registrations count)
};

/// Process-wide counters. Thread-safe; takes the interning lock briefly; never throws. Not for
/// the recording path.
ProbeStats probe_stats() noexcept;

/// Hands the segment to a reachable agent now (as the probe does at exit), waiting at most
/// `timeout`. Returns true when an agent holds the segment. Blocks; call it off the hot path.
bool flush_to_agent(std::chrono::milliseconds timeout) noexcept;

}  // namespace plugmon

#define PLUGMON_CAT_(a, b) a##b
#define PLUGMON_CAT(a, b) PLUGMON_CAT_(a, b)

/// Declares `var`, a QueryScope with op and table interned once per call site.
#define PLUGMON_QUERY(var, plugin, op, table)                                  \
    static const ::plugmon::Name PLUGMON_CAT(plugmon_op_, __LINE__){op};       \
    static const ::plugmon::Name PLUGMON_CAT(plugmon_table_, __LINE__){table}; \
    ::plugmon::QueryScope var =                                                \
        (plugin).query(PLUGMON_CAT(plugmon_op_, __LINE__), PLUGMON_CAT(plugmon_table_, __LINE__))
