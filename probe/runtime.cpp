// The probe's cold path: segment creation, lane hand-out and release, name interning, the helper
// thread that registers the segment with the agent, the exit hand-over, and fork safety.
#include <plugmon/probe.hpp>
#include <plugmon/runtime_dir.hpp>

#include "fingerprint.hpp"
#include "shape_table.hpp"
#include "statement_shape.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

namespace plugmon::detail {

__thread lane_writer* tls_writer __attribute__((tls_model("initial-exec"))) = nullptr;
__thread std::uint32_t tls_tenant __attribute__((tls_model("initial-exec"))) = 0;
__thread std::uint32_t tls_plugin __attribute__((tls_model("initial-exec"))) = 0;
bool clock_is_tsc = false;

namespace {

using layout::lane_header;
using layout::name_entry;
using layout::segment_header;

std::uint64_t env_u64(const char* name, std::uint64_t fallback, std::uint64_t lo,
                      std::uint64_t hi) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < lo || x > hi) {
        std::fprintf(stderr, "plugmon: ignoring %s=%s (expected an integer in [%llu, %llu])\n",
                     name, v, static_cast<unsigned long long>(lo),
                     static_cast<unsigned long long>(hi));
        return fallback;
    }
    return x;
}

/// Where the agent's socket is, by the rule the agent uses too (plugmon/runtime_dir.hpp); ""
/// when the path would not fit in a socket address. Allocates (the runtime's constructor).
std::string socket_path_from_env() {
    char dir[sizeof(sockaddr_un::sun_path)];
    const std::size_t n = plugmon::runtime_dir(dir, sizeof dir);
    if (n == 0) return std::string();
    std::string path = std::string(dir, n) + "/" + layout::socket_name;
    return path.size() < sizeof dir ? path : std::string();
}

/// Where else to look when no agent answers at socket_path: the system agent's socket, unless
/// PLUGMON_RUNTIME_DIR names the directory or the rule chose the system directory already ("").
/// A plugin of any user thus reaches a system agent whose socket it may connect to, without
/// having to write to its directory. Allocates (the runtime's constructor).
std::string system_socket_fallback() {
    const char* set = std::getenv("PLUGMON_RUNTIME_DIR");
    if (set != nullptr && *set != '\0') return std::string();
    const auto c = plugmon::detail::choose_runtime_dir(plugmon::system_runtime_dir);
    if (c.base == plugmon::system_runtime_dir) return std::string();
    return std::string(plugmon::system_runtime_dir) + "/" + layout::socket_name;
}

bool cpu_has_invariant_tsc() {
#if defined(__x86_64__) || defined(__i386__)
    std::FILE* f = std::fopen("/proc/cpuinfo", "re");
    if (f == nullptr) return false;
    char line[4096];
    bool constant = false, nonstop = false;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "flags", 5) != 0) continue;
        constant = std::strstr(line, " constant_tsc") != nullptr;
        nonstop = std::strstr(line, " nonstop_tsc") != nullptr;
        break;
    }
    std::fclose(f);
    return constant && nonstop;
#else
    return false;
#endif
}

/// One message per distinct problem, to stderr: probe setup never throws into the plugin.
void log_once(std::atomic<bool>& said, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void log_once(std::atomic<bool>& said, const char* fmt, ...) {
    if (said.exchange(true)) return;
    std::va_list ap;
    va_start(ap, fmt);
    std::fputs("plugmon: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
}

/// All process-wide probe state. Allocated once and never freed, so the helper thread and
/// late-exiting threads can never touch destroyed objects during process exit.
struct runtime {
    // settings (from the environment, read once)
    bool disabled = false;
    std::string socket_path;
    std::string fallback_socket_path;  // see system_socket_fallback(); empty: none
    std::uint32_t lanes = 64;
    std::uint32_t lane_slots = 16384;
    std::uint32_t name_capacity = 4096;
    std::uint32_t statement_capacity = layout::default_statement_capacity;
    std::uint64_t exit_wait_ms = 100;
    std::uint64_t reconnect_ms = 200;
    bool resource_sampling = true;

    // interning (process memory; mirrored into the segment's name table)
    std::mutex mu;  // guards names, the segment pointer, and segment creation
    std::unordered_map<std::string, std::uint32_t> ids;
    std::deque<std::string> texts;  // texts[id]; stable addresses
    std::atomic<bool> said_overflow{false};
    // statements: normalised text and fingerprint, id = index + 1
    std::unordered_map<std::uint64_t, std::uint32_t> statement_ids;  // fingerprint -> id
    std::deque<std::pair<std::string, std::uint64_t>> statements;
    std::atomic<bool> said_statements_full{false};
    // shape key -> id, read without the lock (inserts hold mu); null if it could not be allocated
    std::unique_ptr<shape_table> shapes;

    // segment
    int seg_fd = -1;
    segment_header* seg = nullptr;
    std::uint64_t seg_size = 0;
    layout::geometry geo{};
    std::atomic<bool> seg_failed{false};
    std::atomic<bool> said_seg_failed{false};

    // Registration with the agent. Who writes and who reads (all sequentially consistent):
    //  - registering: a try-lock (0 free, 1 held), taken by CAS and released by a store, shared
    //    by the helper thread (helper_loop) and the exit path (flush_to_agent, also called by the
    //    atexit hand-over). Only its holder calls register_now(): one registration at a time.
    //  - sock: the registered socket, -1 when none. Stored by register_now() (holding
    //    `registering`) before it sets `attached`; the helper, the only reader of the agent's
    //    messages, clears `attached`, stores -1 and closes the socket when the agent hangs up; the
    //    exit path loads it to say bye when `attached` is true.
    //  - attached: true while `sock` is registered. Set by register_now(), cleared by the helper;
    //    read by the helper, the exit path and probe_stats(). registrations: counted by
    //    register_now(), read by probe_stats().
    //  - refused: the agent said no to this segment (retry slowly). Written by register_now(),
    //    read by the helper.
    //  - helper_running: one helper thread; set by start_helper() with a CAS, cleared when the
    //    thread cannot start or stops on an exception.
    // atfork_child() resets them all: a child has no helper thread and no registration.
    std::atomic<int> sock{-1};
    std::atomic<bool> attached{false};
    std::atomic<int> registering{0};
    std::atomic<std::uint64_t> registrations{0};
    std::atomic<bool> helper_running{false};
    std::atomic<bool> said_refused{false};
    std::atomic<bool> refused{false};

    std::atomic<std::uint64_t> writers_live{0};

    runtime() {
        const char* disable = std::getenv("PLUGMON_DISABLE");
        disabled = disable != nullptr && *disable != '\0' && std::strcmp(disable, "0") != 0;
        socket_path = socket_path_from_env();
        fallback_socket_path = system_socket_fallback();
        lanes = std::uint32_t(env_u64("PLUGMON_LANES", 64, 1, layout::max_lanes));
        lane_slots = std::uint32_t(
            env_u64("PLUGMON_LANE_SLOTS", 16384, layout::min_lane_slots, layout::max_lane_slots));
        if (!layout::is_pow2(lane_slots)) {
            std::uint32_t p = layout::min_lane_slots;
            while (p < lane_slots) p <<= 1;
            lane_slots = p;
        }
        name_capacity =
            std::uint32_t(env_u64("PLUGMON_NAMES", 4096, 16, layout::max_name_capacity));
        statement_capacity =
            std::uint32_t(env_u64("PLUGMON_STATEMENTS", layout::default_statement_capacity, 0,
                                  layout::max_statement_capacity));
        // Room for many spellings of each statement (spacing, IN-list lengths), within 4 MiB.
        shapes.reset(new (std::nothrow) shape_table(
            std::min<std::size_t>(std::size_t(statement_capacity) * 16, std::size_t(1) << 18)));
        // Never build a segment the agent would refuse as too large.
        while (layout::make_geometry(lanes, lane_slots, name_capacity, statement_capacity)
                       .segment_size > layout::max_segment_size &&
               lane_slots > layout::min_lane_slots)
            lane_slots >>= 1;
        exit_wait_ms = env_u64("PLUGMON_EXIT_WAIT_MS", 100, 0, 60000);
        reconnect_ms = env_u64("PLUGMON_RECONNECT_MS", 200, 10, 60000);
        resource_sampling = env_u64("PLUGMON_RESOURCE_SAMPLES", 1, 0, 1) != 0;
        const char* clock = std::getenv("PLUGMON_CLOCK");
        clock_is_tsc =
            !(clock != nullptr && std::strcmp(clock, "monotonic") == 0) && cpu_has_invariant_tsc();
        texts.emplace_back("");
        texts.emplace_back(layout::overflow_label);
    }

    name_entry* names_base() const {
        return reinterpret_cast<name_entry*>(reinterpret_cast<char*>(seg) + geo.names_offset);
    }
    lane_header* lane(std::uint32_t i) const {
        return reinterpret_cast<lane_header*>(reinterpret_cast<char*>(seg) + geo.lanes_offset) + i;
    }
    layout::slot* lane_slots_base(std::uint32_t i) const {
        return reinterpret_cast<layout::slot*>(reinterpret_cast<char*>(seg) + geo.slots_offset) +
               std::uint64_t(i) * geo.lane_slots;
    }

    // Caller holds mu.
    void publish_name(std::uint32_t id) {
        if (seg == nullptr || id >= geo.name_capacity) return;
        const std::string& t = texts[id];
        name_entry& e = names_base()[id];
        std::memcpy(e.text, t.data(), t.size());
        // release: pairs with the agent's length.load(acquire) before it reads text.
        e.length.store(std::uint32_t(t.size()), std::memory_order_release);
        // release: pairs with the agent's names_published.load(acquire).
        seg->names_published.store(id + 1, std::memory_order_release);
    }

    // Caller holds mu.
    void publish_statement(std::uint32_t id) {
        if (seg == nullptr || id == 0 || id > geo.statement_capacity) return;
        const auto& [text, fingerprint] = statements[id - 1];
        auto* e = reinterpret_cast<layout::statement_entry*>(reinterpret_cast<char*>(seg) +
                                                             geo.statements_offset) +
                  (id - 1);
        std::memcpy(e->text, text.data(), text.size());
        e->fingerprint = fingerprint;
        // release: pairs with the agent's length.load(acquire) before it reads text and fingerprint.
        e->length.store(std::uint32_t(text.size()), std::memory_order_release);
        // release: pairs with the agent's statements_published.load(acquire).
        seg->statements_published.store(id, std::memory_order_release);
    }

    /// The id of the statement `sql` (whose shape key is `shape`): without a lock when the shape
    /// is known; else normalised and fingerprinted here, and interned and its shape kept under mu.
    std::uint32_t intern_statement(std::uint64_t shape, std::string_view sql) {
        std::uint32_t id = 0;
        if (shapes && shapes->find(shape, id)) return id;
        char buf[layout::statement_max_length];
        const std::size_t n = normalize_statement(sql, buf, sizeof buf);
        const std::string_view normalized(buf, n);
        const std::uint64_t fp = n != 0 ? statement_fingerprint(normalized) : 0;
        std::lock_guard<std::mutex> lock(mu);
        id = n != 0 ? statement_id_locked(normalized, fp) : 0;
        // A full statement table never empties, so its 0 is as final as any id.
        if (shapes) shapes->insert(shape, id);
        return id;
    }

    // Caller holds mu.
    std::uint32_t statement_id_locked(std::string_view normalized, std::uint64_t fp) {
        if (auto it = statement_ids.find(fp); it != statement_ids.end()) return it->second;
        if (statements.size() >= statement_capacity) {
            log_once(said_statements_full,
                     "statement table full (%u statements): further statements are recorded "
                     "without their text (raise PLUGMON_STATEMENTS)",
                     statement_capacity);
            return 0;
        }
        statements.emplace_back(std::string(normalized), fp);
        const auto id = std::uint32_t(statements.size());
        statement_ids.emplace(fp, id);
        publish_statement(id);
        return id;
    }

    std::uint32_t intern(std::string_view name, const char** text) {
        if (name.empty()) return layout::name_empty;
        if (name.size() > layout::name_max_length) name = name.substr(0, layout::name_max_length);
        std::lock_guard<std::mutex> lock(mu);
        if (auto it = ids.find(std::string(name)); it != ids.end()) {
            if (text != nullptr) *text = texts[it->second].c_str();
            return it->second;
        }
        if (texts.size() >= name_capacity) {
            log_once(said_overflow,
                     "name table full (%u names): further names are recorded as \"%s\" "
                     "(raise PLUGMON_NAMES)",
                     name_capacity, layout::overflow_label);
            return layout::name_overflow;
        }
        const auto id = std::uint32_t(texts.size());
        texts.emplace_back(name);
        ids.emplace(texts.back(), id);
        publish_name(id);
        if (text != nullptr) *text = texts.back().c_str();
        return id;
    }

    // Caller holds mu. Creates, seals and maps the segment and writes every known name.
    bool create_segment() {
        if (seg != nullptr) return true;
        if (seg_failed.load()) return false;
        geo = layout::make_geometry(lanes, lane_slots, name_capacity, statement_capacity);
        int fd = ::memfd_create("plugmon-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        void* base = MAP_FAILED;
        const char* step = "memfd_create";
        if (fd >= 0) {
            step = "ftruncate";
            if (::ftruncate(fd, off_t(geo.segment_size)) == 0) {
                step = "seal";
                // Sealed against resizing, so a mapping of it can never SIGBUS the agent.
                if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0) {
                    step = "mmap";
                    base = ::mmap(nullptr, geo.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                                  0);
                }
            }
        }
        if (base == MAP_FAILED) {
            const int err = errno;
            if (fd >= 0) ::close(fd);
            seg_failed.store(true);
            log_once(said_seg_failed,
                     "cannot create the shared-memory segment (%s: %s); events are counted as "
                     "dropped",
                     step, std::strerror(err));
            return false;
        }
        seg_fd = fd;
        seg_size = geo.segment_size;
        seg = static_cast<segment_header*>(base);
        seg->magic = layout::segment_magic;
        seg->version = layout::layout_version;
        layout::write_geometry(*seg, geo);
        seg->clock = std::uint32_t(clock_is_tsc ? layout::clock_kind::tsc
                                                : layout::clock_kind::monotonic_ns);
        seg->creator_pid = std::uint32_t(::getpid());
        seg->helper_lane.store(~0u, std::memory_order_relaxed);
        for (std::uint32_t id = layout::first_name_id; id < texts.size(); ++id) publish_name(id);
        for (std::uint32_t id = 1; id <= statements.size(); ++id) publish_statement(id);
        // release: pairs with the agent's ready.load(acquire) before it trusts line 0.
        seg->ready.store(layout::layout_version, std::memory_order_release);
        return true;
    }

    void start_helper();
    bool register_now(int timeout_ms);
    void helper_loop();
    void sample_resources();
    lane_writer* acquire_helper_lane();
    void release_segment_in_child();
};

runtime* rt_ptr = nullptr;

// Allocation accounting: static storage, so charging bytes never allocates or constructs the
// runtime (the plugmon::alloc operators call it from inside operator new).
struct alignas(64) alloc_counter {
    std::atomic<std::uint64_t> allocated{0};
    std::atomic<std::uint64_t> freed{0};
};
alloc_counter alloc_counters[layout::max_name_capacity];
std::atomic<std::uint32_t> alloc_high{0};  // highest plugin id charged so far, + 1

// Events recorded while this process had no segment (no memory for the runtime, no segment, or
// no memory for a thread's writer): static storage, so it counts even when the runtime could not
// be built. Relaxed: a statistic, read by probe_stats().
std::atomic<std::uint64_t> events_unavailable{0};

void on_exit_handover();
void atfork_prepare();
void atfork_parent();
void atfork_child();

/// The runtime, built at first use. Throws what building it throws (std::bad_alloc); the next
/// call tries again. Entry points use try_rt().
runtime& rt() {
    static runtime* r = [] {
        auto* p = new runtime();
        rt_ptr = p;
        ::pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        return p;
    }();
    return *r;
}

/// The runtime, or nullptr when it cannot be built now (out of memory): every probe entry point
/// goes through here, so a failure becomes a dropped event or a "not attached", never an
/// exception in the plugin.
runtime* try_rt() noexcept {
    try {
        return &rt();
    } catch (...) {
        return nullptr;
    }
}

bool send_all(int fd, const void* buf, std::size_t len, int pass_fd) {
    msghdr msg{};
    iovec iov{const_cast<void*>(buf), len};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0) {
        std::memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n;
    do n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(len);
}

const char* status_text(std::uint32_t s) {
    switch (layout::welcome_status(s)) {
        case layout::welcome_status::accepted:
            return "accepted";
        case layout::welcome_status::bad_message:
            return "bad message";
        case layout::welcome_status::bad_segment:
            return "incompatible segment";
        case layout::welcome_status::too_many:
            return "too many producers";
        case layout::welcome_status::duplicate:
            return "duplicate segment";
        case layout::welcome_status::agent_closing:
            return "agent shutting down";
    }
    return "unknown status";
}

/// A SOCK_SEQPACKET connection to the agent socket at `path`, with send and receive timeouts of
/// `timeout_ms`; -1 when nothing accepts there.
int connect_agent(const std::string& path, int timeout_ms) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) return -1;
    const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return s;
    ::close(s);
    return -1;
}

// Connects (the rule's socket, else the system agent's), passes the segment, waits for the
// answer. Caller owns `registering`.
bool runtime::register_now(int timeout_ms) {
    int fd = -1;
    {
        std::lock_guard<std::mutex> lock(mu);
        if (seg == nullptr) return false;
        fd = ::fcntl(seg_fd, F_DUPFD_CLOEXEC, 3);
    }
    if (fd < 0) return false;
    const std::string* path = &socket_path;
    int s = connect_agent(socket_path, timeout_ms);
    if (s < 0 && !fallback_socket_path.empty()) {
        path = &fallback_socket_path;
        s = connect_agent(fallback_socket_path, timeout_ms);
    }
    bool ok = false;
    if (s >= 0) {
        const layout::hello_message hello{
            layout::hello_magic, std::uint32_t(layout::message_type::hello),
            layout::protocol_version, std::uint32_t(::getpid()), seg_size};
        layout::welcome_message w{};
        if (send_all(s, &hello, sizeof hello, fd) &&
            ::recv(s, &w, sizeof w, 0) == static_cast<ssize_t>(sizeof w) &&
            w.magic == layout::hello_magic &&
            w.type == std::uint32_t(layout::message_type::welcome)) {
            if (w.status == std::uint32_t(layout::welcome_status::accepted)) {
                ok = true;
                refused.store(false);
            } else {
                refused.store(w.status != std::uint32_t(layout::welcome_status::agent_closing));
                log_once(said_refused, "agent at %s refused this process: %s", path->c_str(),
                         status_text(w.status));
            }
        }
    }
    ::close(fd);
    if (!ok) {
        if (s >= 0) ::close(s);
        return false;
    }
    timeval none{0, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    sock.store(s);
    registrations.fetch_add(1);
    attached.store(true);
    return true;
}

/// Reads a whole small /proc file into buf (NUL-terminated); false when it cannot.
bool read_proc(const char* path, char* buf, std::size_t cap) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::size_t n = 0;
    for (;;) {
        const ssize_t r = ::read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += std::size_t(r);
        if (n == cap - 1) break;
    }
    ::close(fd);
    buf[n] = '\0';
    return n > 0;
}

std::uint64_t field_after(const char* text, const char* key) {
    const char* p = std::strstr(text, key);
    return p ? std::strtoull(p + std::strlen(key), nullptr, 10) : ~0ull;
}

// Once a second, from the helper thread: the process's resources and, when plugmon::alloc is
// linked, every plugin's heap totals. Recorded on the helper's own lane, so they never count as
// events the plugin recorded (ProbeStats leaves that lane out).
void runtime::sample_resources() {
    lane_writer* w = tls_writer;
    if (w == nullptr) {
        w = acquire_helper_lane();
        if (w == nullptr) return;  // no lane that never held plugin events: skip sampling
    }
    const std::uint64_t t = now();
    auto put = [&](layout::resource_field f, std::uint32_t plugin, std::uint64_t v,
                   std::uint64_t v2) {
        emit(w, layout::event_kind::resource, 0, plugin, 0, 0, 0, std::uint32_t(f), t, 0, v, v2);
    };
    char buf[4096];
    if (read_proc("/proc/self/statm", buf, sizeof buf)) {
        const char* p = std::strchr(buf, ' ');
        if (p != nullptr)
            put(layout::resource_field::rss_bytes, 0,
                std::strtoull(p + 1, nullptr, 10) * std::uint64_t(::sysconf(_SC_PAGESIZE)), 0);
    }
    if (read_proc("/proc/self/stat", buf, sizeof buf)) {
        // fields after the ")" that ends the command name: 3 state ... 14 utime 15 stime ... 20 threads
        const char* p = std::strrchr(buf, ')');
        std::uint64_t f[21] = {};
        for (int i = 3; p != nullptr && i <= 20; ++i) {
            p = std::strchr(p + 1, ' ');
            if (p != nullptr) f[i] = std::strtoull(p + 1, nullptr, 10);
        }
        if (p != nullptr) {
            const auto tick_ns = std::uint64_t(1000000000 / ::sysconf(_SC_CLK_TCK));
            put(layout::resource_field::cpu_ns, 0, (f[14] + f[15]) * tick_ns, 0);
            put(layout::resource_field::threads, 0, f[20], 0);
        }
    }
    if (DIR* d = ::opendir("/proc/self/fd")) {
        std::uint64_t n = 0;
        while (const dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
        put(layout::resource_field::open_fds, 0, n > 0 ? n - 1 : 0,
            0);  // minus the directory's own
    }
    if (read_proc("/proc/self/io", buf, sizeof buf)) {
        const std::uint64_t rd = field_after(buf, "\nread_bytes: "),
                            wr = field_after(buf, "\nwrite_bytes: ");
        if (rd != ~0ull) put(layout::resource_field::read_bytes, 0, rd, 0);
        if (wr != ~0ull) put(layout::resource_field::write_bytes, 0, wr, 0);
    }
    const std::uint32_t high =
        std::min(alloc_high.load(std::memory_order_relaxed), geo.name_capacity);
    for (std::uint32_t id = layout::first_name_id; id < high; ++id) {
        const std::uint64_t a = alloc_counters[id].allocated.load(std::memory_order_relaxed);
        if (a != 0)
            put(layout::resource_field::alloc_bytes, id, a,
                alloc_counters[id].freed.load(std::memory_order_relaxed));
    }
}

// The helper's lane must never have held events of plugin code: ProbeStats and the agent leave
// the whole lane out of the plugin's counts. So it takes a lane that was never used (head and
// drops 0), searching from the last one (threads search from the first), and keeps it for good.
lane_writer* runtime::acquire_helper_lane() {
    if (seg == nullptr) return nullptr;
    auto* w = new (std::nothrow) lane_writer{};
    if (w == nullptr) return nullptr;
    const auto tid = std::uint32_t(::syscall(SYS_gettid));
    for (std::uint32_t i = geo.lane_count; i-- > 0;) {
        lane_header* h = lane(i);
        std::uint32_t free_owner = 0;
        // A relaxed look first (never used, not owned), so taken lanes cost no CAS; the CAS
        // below is what claims the lane.
        if (h->owner.load(std::memory_order_relaxed) != 0 ||
            h->head.load(std::memory_order_relaxed) != 0 ||
            h->dropped_full.load(std::memory_order_relaxed) != 0)
            continue;
        // acquire: pairs with a previous owner's release in lane_releaser (none, if head is 0).
        if (h->owner.compare_exchange_strong(free_owner, tid, std::memory_order_acquire)) {
            if (h->head.load(std::memory_order_relaxed) != 0) {  // used between the two looks
                h->owner.store(0, std::memory_order_release);
                continue;
            }
            w->hdr = h;
            w->slots = lane_slots_base(i);
            w->capacity = geo.lane_slots;
            w->mask = geo.lane_slots - 1;
            w->cached_tail = h->tail.load(std::memory_order_acquire);
            // release: pairs with ProbeStats' and the agent's acquire loads of helper_lane; set
            // before the first sample is published on the lane.
            seg->helper_lane.store(i, std::memory_order_release);
            tls_writer = w;  // the helper never exits, so its lane is never released
            return w;
        }
    }
    delete w;
    return nullptr;
}

void runtime::helper_loop() {
    ::pthread_setname_np(::pthread_self(), "plugmon-probe");
    // The first sample waits a second: the helper's lane is taken after the threads that start
    // recording at once have taken theirs (with few lanes, it must not push one to the shared lane).
    auto next_sample = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (;;) {
        if (std::chrono::steady_clock::now() >= next_sample) {
            next_sample = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            if (resource_sampling) sample_resources();
        }
        if (!attached.load()) {
            int idle = 0;
            if (registering.compare_exchange_strong(idle, 1)) {
                register_now(1000);
                registering.store(0);
            }
            if (!attached.load()) {
                // An agent that refused this segment will refuse it again: ask every 10 s,
                // not every reconnect interval, so neither side floods its log.
                const std::uint64_t wait_ms =
                    refused.load() ? std::max<std::uint64_t>(reconnect_ms, 10000) : reconnect_ms;
                std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
                continue;
            }
        }
        const int s = sock.load();
        pollfd p{s, POLLIN, 0};
        const int n = ::poll(&p, 1, 1000);
        if (n > 0) {
            char buf[64];
            const ssize_t r = ::recv(s, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                // The agent went away (restart or crash): keep recording, register again.
                attached.store(false);
                sock.store(-1);
                ::close(s);
            }
        }
    }
}

void runtime::start_helper() {
    bool expected = false;
    if (!helper_running.compare_exchange_strong(expected, true)) return;
    try {
        std::thread([this] {
            try {
                helper_loop();
            } catch (...) {  // nothing in the loop should throw; never let it end the process
                helper_running.store(false);
            }
        }).detach();
    } catch (...) {  // no memory or no thread: retried by the next thread that takes a lane
        helper_running.store(false);
    }
}

void on_exit_handover() {
    runtime* r = rt_ptr;
    if (r == nullptr || r->seg == nullptr) return;
    r->seg->state.store(std::uint32_t(layout::segment_state::closed), std::memory_order_release);
    if (!r->attached.load() && r->exit_wait_ms > 0)
        plugmon::flush_to_agent(std::chrono::milliseconds(r->exit_wait_ms));
    if (r->attached.load()) {
        const layout::bye_message bye{layout::hello_magic,
                                      std::uint32_t(layout::message_type::bye)};
        send_all(r->sock.load(), &bye, sizeof bye, -1);
    }
}

void atfork_prepare() { rt_ptr->mu.lock(); }
void atfork_parent() { rt_ptr->mu.unlock(); }

// The child has one thread and a copy of the parent's memory, including a MAP_SHARED view of the
// parent's segment: it must not write there. It forgets the segment (a new one is created at its
// first event), keeps its interned names (ids stay valid; they are copied into the new segment),
// and closes the parent's registration socket so the parent's exit is still seen by the agent.
void atfork_child() {
    runtime& r = *rt_ptr;
    if (r.seg != nullptr) ::munmap(r.seg, r.seg_size);
    if (r.seg_fd >= 0) ::close(r.seg_fd);
    r.seg = nullptr;
    r.seg_fd = -1;
    r.seg_failed.store(false);
    if (const int s = r.sock.exchange(-1); s >= 0) ::close(s);
    r.attached.store(false);
    r.registering.store(0);
    r.registrations.store(0);
    r.helper_running.store(false);
    events_unavailable.store(0, std::memory_order_relaxed);
    r.writers_live.store(0);
    if (tls_writer != nullptr) {
        tls_writer->hdr = nullptr;  // the releaser must not touch the parent's lane
        tls_writer = nullptr;
    }
    r.mu.unlock();
}

/// Releases the thread's lane at thread exit so another thread can take it.
struct lane_releaser {
    lane_writer* w = nullptr;
    ~lane_releaser() {
        if (w == nullptr) return;
        if (w->hdr != nullptr && !w->shared) {
            // release: the next owner's acquire CAS on owner sees our final head/dropped.
            w->hdr->owner.store(0, std::memory_order_release);
            if (rt_ptr != nullptr) rt_ptr->writers_live.fetch_sub(1);
        }
        if (tls_writer == w) tls_writer = nullptr;
        delete w;
        w = nullptr;
    }
};
thread_local lane_releaser tls_releaser;

/// Claims the first free per-thread lane for `w`, else hands it the shared lane. No allocation.
void claim_lane(runtime& r, lane_writer* w) noexcept {
    const auto tid = std::uint32_t(::syscall(SYS_gettid));
    for (std::uint32_t i = 0; i < r.geo.lane_count; ++i) {
        lane_header* h = r.lane(i);
        if (h->owner.load(std::memory_order_relaxed) != 0) continue;  // a cheap look first
        std::uint32_t free_owner = 0;
        // acquire: pairs with the previous owner's release in lane_releaser.
        if (h->owner.compare_exchange_strong(free_owner, tid, std::memory_order_acquire)) {
            w->hdr = h;
            w->slots = r.lane_slots_base(i);
            w->head = h->head.load(std::memory_order_relaxed);
            w->dropped = h->dropped_full.load(std::memory_order_relaxed);
            w->cached_tail = h->tail.load(std::memory_order_acquire);
            r.writers_live.fetch_add(1);
            break;
        }
    }
    if (w->hdr == nullptr) {  // every per-thread lane is taken: use the shared lane
        w->shared = true;
        w->hdr = r.lane(r.geo.lane_count);
        w->slots = r.lane_slots_base(r.geo.lane_count);
    }
    w->capacity = r.geo.lane_slots;
    w->mask = r.geo.lane_slots - 1;
}

/// acquire_writer() with exceptions allowed (the mutex, call_once); the caller catches them.
lane_writer* acquire_writer_or_throw(runtime& r) {
    {
        std::lock_guard<std::mutex> lock(r.mu);
        if (!r.create_segment()) return nullptr;
    }
    static std::once_flag exit_hook;
    std::call_once(exit_hook, [] { std::atexit(on_exit_handover); });
    r.start_helper();
    auto* w = new (std::nothrow) lane_writer{};
    if (w == nullptr) return nullptr;
    claim_lane(r, w);
    tls_writer = w;
    tls_releaser.w = w;
    return w;
}

}  // namespace

lane_writer* acquire_writer() noexcept {
    runtime* r = try_rt();
    if (r == nullptr || r->disabled) return nullptr;
    try {
        return acquire_writer_or_throw(*r);
    } catch (...) {  // never into the plugin: this event and the next are counted as dropped
        return nullptr;
    }
}

void emit_shared(const layout::slot& s) noexcept {
    lane_writer* w = tls_writer;
    lane_header* h = w->hdr;
    std::uint64_t idx = h->head.load(std::memory_order_relaxed);
    for (;;) {
        // acquire: pairs with the agent's tail.store(release).
        const std::uint64_t tail = h->tail.load(std::memory_order_acquire);
        if (idx - tail >= w->capacity) {
            h->dropped_full.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (h->head.compare_exchange_weak(idx, idx + 1, std::memory_order_relaxed)) break;
    }
    layout::slot* dst = &w->slots[idx & w->mask];
    layout::slot copy = s;
    copy.seq = 0;
    std::memcpy(reinterpret_cast<char*>(dst) + 4, reinterpret_cast<const char*>(&copy) + 4,
                sizeof copy - 4);
    // release: pairs with the agent's acquire load of seq before it reads the slot.
    __atomic_store_n(&dst->seq, std::uint32_t(idx + 1), __ATOMIC_RELEASE);
}

void count_unavailable() noexcept {
    const runtime* r = try_rt();
    if (r == nullptr || !r->disabled) events_unavailable.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t intern_slow(std::string_view name, const char** text) noexcept {
    try {
        return rt().intern(name, text);
    } catch (...) {  // allocation failure (names or the runtime): fold, never throw into the plugin
        return layout::name_overflow;
    }
}

std::uint32_t intern_miss(name_cache_entry* set, std::string_view name) noexcept {
    const char* text = nullptr;
    const std::uint32_t id = intern_slow(name, &text);
    if (text != nullptr) {
        for (std::size_t i = name_cache_ways - 1; i > 0; --i)
            set[i] = set[i - 1];  // least recent out
        set[0] = name_cache_entry{name.data(), text, std::uint32_t(name.size()), id};
    }
    return id;
}

std::uint32_t intern_statement(std::string_view sql) noexcept {
    if (sql.empty()) return 0;
    try {
        runtime& r = rt();
        return r.disabled ? 0 : r.intern_statement(statement_shape(sql), sql);
    } catch (...) {  // allocation failure: the query is still recorded, without its statement
        return 0;
    }
}

namespace {

/// Puts key -> id into a free way of a cache set or, when the set is full, into way 2, moving
/// way 2 to way 3 and dropping way 3: a hit moves an entry up one way (statement_cached), so a
/// one-off text or shape only ever evicts one that has not been hit since it came in.
void cache_insert(statement_cache_entry* set, std::uint64_t key, std::uint32_t id) noexcept {
    static_assert(statement_cache_ways == 4, "way 2 is the first of the two lower ways");
    for (std::size_t i = 0; i < statement_cache_ways; ++i) {
        if (set[i].key == 0) {
            set[i] = statement_cache_entry{key, id, 0};
            return;
        }
    }
    set[3] = set[2];
    set[2] = statement_cache_entry{key, id, 0};
}

}  // namespace

std::uint32_t statement_miss(lane_writer* w, statement_cache_entry* set, std::uint64_t text_hash,
                             std::string_view sql) noexcept {
    const std::uint64_t shape = statement_shape(sql);
    statement_cache_entry* shapes = &w->shapes[(shape >> 57) * statement_cache_ways];
    std::uint32_t id = 0;
    if (!cache_find(shapes, shape, id)) {
        try {
            runtime& r = rt();
            id = r.disabled ? 0 : r.intern_statement(shape, sql);
        } catch (...) {  // allocation failure: recorded without a statement, and not cached
            return 0;
        }
        cache_insert(shapes, shape, id);
    }
    cache_insert(set, text_hash, id);
    return id;
}

void alloc_account(std::uint32_t plugin, std::uint64_t allocated, std::uint64_t freed) noexcept {
    if (plugin >= layout::max_name_capacity) plugin = layout::name_overflow;
    alloc_counter& c = alloc_counters[plugin];
    if (allocated != 0) c.allocated.fetch_add(allocated, std::memory_order_relaxed);
    if (freed != 0) c.freed.fetch_add(freed, std::memory_order_relaxed);
    std::uint32_t high = alloc_high.load(std::memory_order_relaxed);
    while (high <= plugin &&
           !alloc_high.compare_exchange_weak(high, plugin + 1, std::memory_order_relaxed)) {
    }
}

bool alloc_totals(std::uint32_t plugin, std::uint64_t& allocated, std::uint64_t& freed) noexcept {
    if (plugin >= layout::max_name_capacity) return false;
    allocated = alloc_counters[plugin].allocated.load(std::memory_order_relaxed);
    freed = alloc_counters[plugin].freed.load(std::memory_order_relaxed);
    return true;
}

std::uint64_t thread_cpu_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

}  // namespace plugmon::detail

namespace plugmon {

ProbeStats probe_stats() noexcept {
    ProbeStats s;
    s.events_dropped = detail::events_unavailable.load(std::memory_order_relaxed);
    detail::runtime* r = detail::try_rt();
    if (r == nullptr) return s;  // no memory for the runtime yet: only the drops are known
    s.attached = r->attached.load();
    s.registrations = r->registrations.load();
    s.lanes_in_use = r->writers_live.load();
    try {
        std::lock_guard<std::mutex> lock(r->mu);
        if (r->seg == nullptr) return s;
        // acquire: pairs with the helper's helper_lane.store(release); its samples are not the
        // plugin's.
        const std::uint32_t helper = r->seg->helper_lane.load(std::memory_order_acquire);
        for (std::uint32_t i = 0; i <= r->geo.lane_count; ++i) {
            if (i == helper) continue;
            const layout::lane_header* h = r->lane(i);
            s.events_written += h->head.load(std::memory_order_acquire);
            s.events_dropped += h->dropped_full.load(std::memory_order_relaxed);
        }
    } catch (...) {  // the mutex failed to lock: the lanes' counts are left out
    }
    return s;
}

namespace {

/// flush_to_agent() with exceptions allowed (the mutex); the caller catches them.
bool flush_or_throw(detail::runtime& r, std::chrono::milliseconds timeout) {
    {
        std::lock_guard<std::mutex> lock(r.mu);
        if (!r.create_segment()) return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!r.attached.load()) {
        int idle = 0;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        if (r.registering.compare_exchange_strong(idle, 1)) {
            r.register_now(int(left.count()));
            r.registering.store(0);
            if (!r.attached.load()) break;  // nobody is listening: do not spin until the deadline
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    return r.attached.load();
}

}  // namespace

bool flush_to_agent(std::chrono::milliseconds timeout) noexcept {
    detail::runtime* r = detail::try_rt();
    if (r == nullptr || r->disabled) return false;
    try {
        return flush_or_throw(*r, timeout);
    } catch (...) {
        return r->attached.load();
    }
}

}  // namespace plugmon
