// Impostors against a real plugmon-agent: forked processes that build their segments by hand and
// speak the socket protocol themselves (no probe library) to register incompatible layouts,
// malformed hellos, a scribbler beside honest producers, a truncation attempt and a silent
// connection. The agent must refuse, count, quarantine, and keep serving everyone else exactly.
#include "support/harness.hpp"
#include "support/hand_segment.hpp"

#include <plugmon/layout.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace plugmon::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace ly = plugmon::layout;

namespace {

// ---- a segment forged by hand, as a producer without the probe would ----

constexpr char memfd_name[] = "plugmon-impostor";

using forgery = plugmon::test::segment_spec;
using plugmon::test::declare;

/// A segment forged by an impostor: the shared hand-built segment, named as impostors name theirs.
class forged_segment : public plugmon::test::hand_segment {
public:
    explicit forged_segment(const forgery& f) : hand_segment(f, memfd_name) {}
};

/// A valid query event at `index` of a lane; plugin, op and table are ids the caller published.
ly::slot query_at(std::uint64_t index, std::uint32_t plugin, std::uint32_t op,
                  std::uint32_t table) {
    ly::slot s{};
    s.seq = std::uint32_t(index + 1);
    s.kind = std::uint8_t(ly::event_kind::query);
    s.plugin = plugin;
    s.op = op;
    s.table = table;
    s.duration = 1000;
    s.value = 1;
    return s;
}

// ---- the socket protocol, spoken by hand ----

constexpr std::uint32_t no_answer = ~0u;

int connect_agent(const std::string& runtime_dir) {
    const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    timeval tv{5, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = runtime_dir + "/" + ly::socket_name;
    std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path - 1));
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

/// One datagram carrying `fds` (SCM_RIGHTS) when there are any.
bool send_message(int s, const void* data, std::size_t len, const std::vector<int>& fds) {
    iovec iov{const_cast<void*>(data), len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(s, &msg, MSG_NOSIGNAL) == ssize_t(len);
}

/// The status of the agent's welcome, or no_answer when it closed or stayed silent.
std::uint32_t read_welcome(int s) {
    ly::welcome_message w{};
    if (::recv(s, &w, sizeof w, 0) != ssize_t(sizeof w)) return no_answer;
    if (w.magic != ly::hello_magic || w.type != std::uint32_t(ly::message_type::welcome))
        return no_answer;
    return w.status;
}

ly::hello_message hello_for(const forged_segment* seg) {
    return {ly::hello_magic, std::uint32_t(ly::message_type::hello), ly::protocol_version,
            std::uint32_t(::getpid()), seg ? seg->size() : 0};
}

/// Registers `seg` on a fresh connection; returns the status (the connection stays open in `s`).
std::uint32_t register_segment(const std::string& runtime_dir, const forged_segment& seg, int& s) {
    s = connect_agent(runtime_dir);
    if (s < 0) return no_answer;
    const auto hello = hello_for(&seg);
    if (!send_message(s, &hello, sizeof hello, {seg.fd()})) return no_answer;
    return read_welcome(s);
}

// ---- impostor processes ----

/// What an impostor tells the test. Plain bytes: it crosses a pipe.
struct report {
    bool ok = false;                   ///< every step of the body ran as planned
    std::uint32_t status = no_answer;  ///< the agent's welcome
    int err[4] = {};                   ///< errno of the acts under test (0 = it succeeded)
    std::uint64_t n[6] = {};           ///< scenario-specific counts
    char note[200] = {};               ///< what went wrong, when !ok
};

void fail(report& r, const std::string& why) {
    r.ok = false;
    std::snprintf(r.note, sizeof r.note, "%s", why.c_str());
}

/// The child's end of the pipes to and from the test.
class control {
public:
    control(int to_test, int from_test) : to_test_(to_test), from_test_(from_test) {}
    /// Sends the report so far; the test reads it with impostor::next.
    void send(const report& r) const { (void)!::write(to_test_, &r, sizeof r); }
    /// Blocks until the test calls impostor::release (at most 60 s).
    void hold() const {
        pollfd p{from_test_, POLLIN, 0};
        if (::poll(&p, 1, 60000) == 1) {
            char c;
            (void)!::read(from_test_, &c, 1);
        }
    }

private:
    int to_test_, from_test_;
};

/// A forked process running `body(report, control)`; it never returns into the test. The final
/// report is sent when the body returns, then the process exits (closing its agent connection).
class impostor {
public:
    using body_fn = std::function<void(report&, const control&)>;
    explicit impostor(const body_fn& body) {
        int up[2], down[2];
        if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe");
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork");
        if (pid_ == 0) {
            ::close(up[0]);
            ::close(down[1]);
            const control ctl(up[1], down[0]);
            report r;
            try {
                r.ok = true;
                body(r, ctl);
            } catch (const std::exception& e) {
                fail(r, std::string("exception: ") + e.what());
            }
            ctl.send(r);
            ::_exit(0);
        }
        ::close(up[1]);
        ::close(down[0]);
        from_child_ = up[0];
        to_child_ = down[1];
    }
    ~impostor() {
        if (!reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(from_child_);
        ::close(to_child_);
    }
    impostor(const impostor&) = delete;
    impostor& operator=(const impostor&) = delete;

    pid_t pid() const { return pid_; }
    /// The next report the child sends; nullopt if it exits or stays silent first.
    std::optional<report> next(std::chrono::milliseconds limit = 30s) {
        pollfd p{from_child_, POLLIN, 0};
        if (::poll(&p, 1, int(limit.count())) != 1) return std::nullopt;
        report r;
        if (::read(from_child_, &r, sizeof r) != ssize_t(sizeof r)) return std::nullopt;
        return r;
    }
    /// Lets a child waiting in control::hold go on.
    void release() { (void)!::write(to_child_, "x", 1); }
    /// Waits for the child to exit; true when it exited with status 0.
    bool wait(std::chrono::milliseconds limit = 30s) {
        const auto end = std::chrono::steady_clock::now() + limit;
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) != pid_) {
            if (std::chrono::steady_clock::now() > end) return false;
            std::this_thread::sleep_for(5ms);
        }
        reaped_ = true;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

private:
    pid_t pid_ = -1;
    int from_child_ = -1, to_child_ = -1;
    bool reaped_ = false;
};

/// Runs a one-shot impostor to its end and returns its final report.
report run_impostor(const impostor::body_fn& body) {
    impostor child(body);
    auto r = child.next();
    child.wait();
    if (!r) {
        report none;
        fail(none, "the impostor died without a report");
        return none;
    }
    return *r;
}

// ---- observing the agent ----

/// Descriptors the agent holds on impostor segments (memfds named memfd_name).
int impostor_memfds_held(pid_t agent_pid) {
    int n = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(agent_pid) + "/fd", ec)) {
        std::error_code lec;
        const auto target = std::filesystem::read_symlink(e.path(), lec).string();
        if (target.find(memfd_name) != std::string::npos) ++n;
    }
    return n;
}

bool healthy(const agent& a) {
    int status = 0;
    return http_get(a.port(), "/healthz", &status).has_value() && status == 200;
}

json producers(const agent& a) { return json::parse(a.producers_json()); }

/// The live (or, with `finished`, the finished) record of `pid` in the API, or null.
json producer_record(const agent& a, pid_t pid, bool finished = false) {
    const json p = producers(a);
    for (const auto& r : p[finished ? "finished" : "producers"])
        if (r["pid"].get<pid_t>() == pid) return r;
    return json();
}

double refused(const metrics& m, const std::string& reason) {
    return m.sum("plugmon_agent_registrations_refused_total", {{"reason", reason}});
}

struct refusal_case {
    const char* what;
    forgery f;
    const char* reason;  ///< label of plugmon_agent_registrations_refused_total
};

// ---- a. incompatible segments and malformed hellos ----

TEST(hostile, refuses_incompatible_segments_with_bad_segment_and_counts_each_by_reason) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    const std::vector<refusal_case> cases = {
        {"wrong magic",
         {.edit = [](ly::segment_header& h) { h.magic = 0x4b4f4f5053ull; }},
         "segment_magic"},
        {"wrong version",
         {.ready = 7, .edit = [](ly::segment_header& h) { h.version = 7; }},
         "segment_version"},
        {"unsealed", {.seals = 0}, "segment_unsealed"},
        {"sealed against shrinking only", {.seals = F_SEAL_SHRINK}, "segment_unsealed"},
        {"not ready", {.ready = 0}, "segment_not_ready"},
        // Each geometry case is self-consistent but for the one bound it breaks.
        {"zero lanes",
         {.edit = [](ly::segment_header& h) { declare(h, 0, 64, 16); }},
         "segment_geometry"},
        {"lanes above max_lanes",
         {.edit = [](ly::segment_header& h) { declare(h, ly::max_lanes + 1, 64, 16); }},
         "segment_geometry"},
        {"lane_slots not a power of two",
         {.edit = [](ly::segment_header& h) { declare(h, 2, 100, 16); }},
         "segment_geometry"},
        {"lane_slots above the maximum",
         {.edit = [](ly::segment_header& h) { declare(h, 2, ly::max_lane_slots << 1, 16); }},
         "segment_geometry"},
        {"absurd name capacity",
         {.edit = [](ly::segment_header& h) { declare(h, 2, 64, 0xffffffffu); }},
         "segment_geometry"},
        {"inconsistent offsets",
         {.edit = [](ly::segment_header& h) { h.slots_offset = h.lanes_offset; }},
         "segment_geometry"},
        {"file smaller than declared",
         {.file_size = std::int64_t(ly::make_geometry(2, 64, 16).segment_size) - 4096},
         "segment_size"},
        {"file smaller than a header", {.file_size = 512}, "segment_size"},
    };
    std::map<std::string, double> expected;
    const metrics before = a.scrape();
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const report r = run_impostor([&](report& out, const control&) {
            forged_segment seg(c.f);
            int s = -1;
            out.status = register_segment(rt, seg, s);
        });
        ASSERT_TRUE(r.ok) << r.note;
        EXPECT_EQ(r.status, std::uint32_t(ly::welcome_status::bad_segment));
        expected[c.reason] += 1;
    }
    // A descriptor that is no memfd at all.
    const report pipe_fd = run_impostor([&](report& out, const control&) {
        int p[2];
        if (::pipe(p) != 0) return fail(out, "pipe");
        const int s = connect_agent(rt);
        const auto hello = hello_for(nullptr);
        if (s < 0 || !send_message(s, &hello, sizeof hello, {p[0]})) return fail(out, "send");
        out.status = read_welcome(s);
    });
    ASSERT_TRUE(pipe_fd.ok) << pipe_fd.note;
    EXPECT_EQ(pipe_fd.status, std::uint32_t(ly::welcome_status::bad_segment));
    expected["segment_unsealed"] += 1;

    const metrics after = a.scrape();
    for (const auto& [reason, n] : expected)
        EXPECT_EQ(refused(after, reason) - refused(before, reason), n) << reason;
    EXPECT_EQ(after.sum("plugmon_agent_registrations_refused_total") -
                  before.sum("plugmon_agent_registrations_refused_total"),
              double(cases.size() + 1))
        << "each attempt is counted once, under one reason";
    EXPECT_EQ(after.sum("plugmon_producers", {{"state", "attached"}}), 0);
    EXPECT_TRUE(producers(a)["producers"].empty()) << a.producers_json();
    EXPECT_TRUE(wait_until([&] { return impostor_memfds_held(a.proc().pid()) == 0; }, 5s))
        << "a refused segment's descriptor must be closed";
    EXPECT_TRUE(healthy(a));
    EXPECT_EQ(a.stop(), 0);
}

TEST(hostile, answers_malformed_hellos_with_bad_message_and_counts_them_as_protocol) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    /// Sends one crafted datagram (with a valid segment's fd when `with_fd`) and reads the answer.
    auto attempt = [&](const std::function<std::string(ly::hello_message&)>& craft, bool with_fd) {
        return run_impostor([&](report& out, const control&) {
            forged_segment seg(forgery{});
            ly::hello_message hello = hello_for(&seg);
            std::string bytes = craft(hello);
            const int s = connect_agent(rt);
            std::vector<int> fds;
            if (with_fd) fds.push_back(seg.fd());
            if (s < 0 || !send_message(s, bytes.data(), bytes.size(), fds))
                return fail(out, "send");
            out.status = read_welcome(s);
        });
    };
    auto raw = [](const ly::hello_message& h) {
        return std::string(reinterpret_cast<const char*>(&h), sizeof h);
    };
    struct malformed {
        const char* what;
        std::function<std::string(ly::hello_message&)> craft;
        bool with_fd;
    };
    const std::vector<malformed> cases = {
        {"short message", [&](ly::hello_message& h) { return raw(h).substr(0, 12); }, true},
        {"empty message", [](ly::hello_message&) { return std::string(); }, true},
        {"no descriptor", [&](ly::hello_message& h) { return raw(h); }, false},
        {"wrong magic",
         [&](ly::hello_message& h) {
             h.magic = 0x0badf00d;
             return raw(h);
         },
         true},
        {"wrong type",
         [&](ly::hello_message& h) {
             h.type = std::uint32_t(ly::message_type::bye);
             return raw(h);
         },
         true},
        {"wrong protocol version",
         [&](ly::hello_message& h) {
             h.version = ly::protocol_version + 1;
             return raw(h);
         },
         true},
        {"longer than a hello", [&](ly::hello_message& h) { return raw(h) + std::string(40, 'x'); },
         true},
    };
    const double before = refused(a.scrape(), "protocol");
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const report r = attempt(c.craft, c.with_fd);
        ASSERT_TRUE(r.ok) << r.note;
        EXPECT_EQ(r.status, std::uint32_t(ly::welcome_status::bad_message));
    }
    // Several descriptors with a valid hello: the first is the segment, the others are closed.
    const report extra = run_impostor([&](report& out, const control&) {
        forged_segment seg(forgery{}), spare1(forgery{}), spare2(forgery{});
        const auto hello = hello_for(&seg);
        const int s = connect_agent(rt);
        if (s < 0 || !send_message(s, &hello, sizeof hello, {seg.fd(), spare1.fd(), spare2.fd()}))
            return fail(out, "send");
        out.status = read_welcome(s);
    });
    ASSERT_TRUE(extra.ok) << extra.note;
    EXPECT_EQ(extra.status, std::uint32_t(ly::welcome_status::accepted));

    const metrics m = a.scrape();
    EXPECT_EQ(refused(m, "protocol") - before, double(cases.size()));
    EXPECT_EQ(m.sum("plugmon_agent_registrations_refused_total"), double(cases.size()))
        << "nothing else was refused";
    EXPECT_TRUE(wait_until([&] { return impostor_memfds_held(a.proc().pid()) == 0; }, 5s))
        << "every descriptor passed with a malformed hello, and every spare one, must be closed";
    EXPECT_TRUE(healthy(a));
    EXPECT_EQ(a.stop(), 0);
}

// ---- b. a scribbler beside honest producers ----

/// The scribbler's segment: names it publishes and what it reports in report::n.
constexpr std::uint32_t rogue_plugin = ly::first_name_id, rogue_op = rogue_plugin + 1,
                        rogue_table = rogue_plugin + 2;
enum scribble_count { valid_first, garbage, valid_mixed, invalid_mixed };

/// Registers, publishes valid events, then writes garbage: first whole random slots, then slots
/// with a right seq but one defect each (or none), then random bytes over the lane headers, the
/// name table and the header. Waits for the agent after each of the first phases so the test
/// knows exactly what it was given.
void scribble(report& r, const control& ctl, const std::string& rt) {
    const forged_segment seg(forgery{.lanes = 4, .lane_slots = 1024, .names = 64});
    seg.name(rogue_plugin, "rogue");
    seg.name(rogue_op, "SELECT");
    seg.name(rogue_table, "t");
    int s = -1;
    r.status = register_segment(rt, seg, s);
    if (r.status != std::uint32_t(ly::welcome_status::accepted)) return fail(r, "not accepted");
    const std::uint32_t lanes = seg.geo().lane_count + 1;  // with the shared lane
    const std::uint64_t cap = seg.geo().lane_slots;
    std::vector<std::uint64_t> head(lanes, 0);

    for (std::uint64_t i = 0; i < 500; ++i)
        seg.put(0, i, query_at(i, rogue_plugin, rogue_op, rogue_table));
    seg.publish(0, head[0] = 500);
    if (!seg.wait_consumed()) return fail(r, "the agent did not drain the valid events");
    r.n[valid_first] = 500;

    std::mt19937_64 rng(20240601);
    auto random_bytes = [&](char* p, std::size_t n) {
        for (std::size_t k = 0; k < n; k += 8) {
            const std::uint64_t v = rng();
            std::memcpy(p + k, &v, std::min<std::size_t>(8, n - k));
        }
    };
    /// Publishes up to 64 slots per lane, made by `make`, wherever the agent left room.
    auto round = [&](std::uint32_t lane_end,
                     const std::function<void(std::uint32_t, std::uint64_t)>& make) {
        for (std::uint32_t i = 0; i < lane_end; ++i) {
            const std::uint64_t room = cap - (head[i] - seg.lane(i).tail.load());
            const std::uint64_t k = std::min<std::uint64_t>(room, 1 + rng() % 64);
            for (std::uint64_t j = 0; j < k; ++j) make(i, head[i]++);
            seg.publish(i, head[i]);
        }
        std::this_thread::sleep_for(200us);
    };

    // Phase 1: random bytes in whole slots of the per-thread lanes (on the shared lane a wrong
    // seq means "claimed, not yet written" and is waited for, not counted).
    auto end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end)
        round(seg.geo().lane_count, [&](std::uint32_t i, std::uint64_t index) {
            random_bytes(seg.slot_bytes(i, index), ly::slot_size);
            ++r.n[garbage];
        });
    if (!seg.wait_consumed()) return fail(r, "the agent stopped draining random slots");

    // Phase 2: right seq; one slot in four valid, the others with one defect each.
    const std::vector<std::function<void(ly::slot&)>> defects = {
        [](ly::slot& x) { x.kind = 0; },
        [](ly::slot& x) { x.kind = 200; },
        [](ly::slot& x) { x.flags = 0x80; },
        [](ly::slot& x) { x.plugin = ly::name_empty; },
        [](ly::slot& x) { x.plugin = 64 + x.plugin; },  // at or past the capacity
        [](ly::slot& x) { x.table = 0xffffffffu; },
        [](ly::slot& x) { x.plugin = 40; },  // never published
        [](ly::slot& x) {
            x.kind = std::uint8_t(ly::event_kind::resource);
            x.aux = 99;
        },
    };
    end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end)
        round(lanes, [&](std::uint32_t i, std::uint64_t index) {
            ly::slot x = query_at(index, rogue_plugin, rogue_op, rogue_table);
            x.start = rng();
            x.duration = rng() % 1'000'000;
            const std::uint64_t pick = rng() % (defects.size() + 2);
            if (pick < defects.size()) {
                defects[pick](x);
                ++r.n[invalid_mixed];
            } else {
                ++r.n[valid_mixed];
            }
            seg.put(i, index, x);
        });
    if (!seg.wait_consumed()) return fail(r, "the agent stopped draining");

    // Phase 3: random bytes over everything the agent reads after attach.
    end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end) {
        random_bytes(seg.base(), ly::header_size);
        random_bytes(seg.base() + seg.geo().lanes_offset, lanes * ly::lane_header_size);
        random_bytes(seg.base() + seg.geo().names_offset,
                     seg.geo().name_capacity * ly::name_entry_size);
        random_bytes(seg.slot_bytes(0, 0), 4096);
        std::this_thread::sleep_for(1ms);
    }
    ctl.send(r);  // done scribbling; the test looks while this process is still connected
    ctl.hold();
}

TEST(hostile, scribbler_is_contained_while_honest_producers_stay_exact) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    loadgen_run honest(
        dir, "honest", rt,
        {"--processes", "2", "--threads", "1", "--rate", "20000", "--duration", "2s", "--plugins",
         "1", "--plugin-prefix", "honest{process}-", "--wait-attached", "10s"});
    // Scribble while the honest processes record.
    ASSERT_TRUE(wait_until([&] { return producers(a)["producers"].size() >= 2; }, 10s))
        << honest.log();
    impostor scribbler([&](report& r, const control& ctl) { scribble(r, ctl, rt); });
    const auto done = scribbler.next();
    ASSERT_TRUE(done.has_value());
    ASSERT_TRUE(done->ok) << done->note;
    const std::uint64_t valid = done->n[valid_first] + done->n[valid_mixed];
    const std::uint64_t invalid = done->n[garbage] + done->n[invalid_mixed];
    std::printf(
        "[ figures  ] scribbler: %llu valid, %llu random slots, %llu valid + %llu defective mixed "
        "slots\n",
        (unsigned long long)done->n[valid_first], (unsigned long long)done->n[garbage],
        (unsigned long long)done->n[valid_mixed], (unsigned long long)done->n[invalid_mixed]);
    EXPECT_GT(done->n[garbage], 0u);
    EXPECT_GT(done->n[valid_mixed], 0u);
    EXPECT_GT(done->n[invalid_mixed], 0u);

    // Still connected: the agent has stopped reading it and says so.
    ASSERT_TRUE(wait_until(
        [&] {
            return a.scrape().sum("plugmon_producers", {{"state", "quarantined"}}) == 1;
        },
        5s))
        << a.producers_json();
    const json live = producer_record(a, scribbler.pid());
    ASSERT_FALSE(live.is_null()) << a.producers_json();
    EXPECT_EQ(live["state"], "quarantined");
    EXPECT_EQ(live["drained"].get<std::uint64_t>(), valid)
        << "exactly the valid slots were aggregated";
    // Every defective slot is counted invalid, and so is every published slot left unread at
    // the quarantine (the quarantine itself is no event).
    EXPECT_GE(live["invalid"].get<std::uint64_t>(), invalid);
    EXPECT_EQ(std::uint64_t(a.scrape().sum("plugmon_queries_total", {{"plugin", "rogue"}})), valid);
    EXPECT_TRUE(healthy(a));
    scribbler.release();
    EXPECT_TRUE(scribbler.wait());

    ASSERT_EQ(honest.finish(), 0) << honest.log();
    ASSERT_EQ(honest.children().size(), 2u);
    std::vector<pid_t> pids{scribbler.pid()};
    for (const auto& c : honest.children()) pids.push_back(c["pid"].get<pid_t>());
    ASSERT_TRUE(wait_until(
        [&] {
            for (pid_t pid : pids)
                if (producer_record(a, pid, true).is_null()) return false;
            return true;
        },
        30s))
        << a.producers_json();

    const metrics m = a.scrape();
    std::uint64_t honest_invalid = 0;
    for (const auto& c : honest.children()) {
        const std::string plugin = "honest" + std::to_string(c["index"].get<int>()) + "-0";
        const auto recorded = c["recorded"].get<std::uint64_t>();
        const auto dropped = c["dropped"].get<std::uint64_t>();
        EXPECT_GT(recorded, 0u);
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})),
                  recorded - dropped)
            << plugin;
        const json f = producer_record(a, c["pid"].get<pid_t>(), true);
        EXPECT_EQ(f["drained"].get<std::uint64_t>(), c["written"].get<std::uint64_t>()) << plugin;
        EXPECT_EQ(f["dropped_full"].get<std::uint64_t>(), dropped) << plugin;
        EXPECT_EQ(f["torn"].get<std::uint64_t>(), 0u) << plugin;
        honest_invalid += f["invalid"].get<std::uint64_t>();
    }
    EXPECT_EQ(honest_invalid, 0u);
    const json rogue = producer_record(a, scribbler.pid(), true);
    EXPECT_EQ(rogue["drained"].get<std::uint64_t>(), valid);
    EXPECT_EQ(m.sum("plugmon_ring_events_dropped_total", {{"reason", "invalid"}}),
              rogue["invalid"].get<double>())
        << "all the invalid slots are the scribbler's";
    EXPECT_EQ(producers(a)["totals"]["producers_quarantined"].get<std::uint64_t>(), 1u);
    // Hundreds of thousands of invalid slots: counted each, but logged only as the count doubles.
    std::istringstream log(read_file(dir.path() + "/agent.log"));
    std::size_t invalid_lines = 0;
    for (std::string line; std::getline(log, line);)
        if (line.find("invalid slot") != std::string::npos) ++invalid_lines;
    EXPECT_GE(invalid_lines, 1u) << "invalid slots are logged";
    EXPECT_LE(invalid_lines, 64u) << "a producer writing garbage must not flood the agent's log";
    EXPECT_TRUE(a.proc().running());
    EXPECT_TRUE(healthy(a));
    std::string out;
    EXPECT_EQ(promtool_check_metrics(dir.path(), a.metrics_text(), out), 0) << out;
    EXPECT_EQ(a.stop(), 0);
}

/// Registers a valid segment, lets the agent see it sound, then breaks one thing with `act`.
void break_after_registering(report& r, const control& ctl, const std::string& rt,
                             const std::function<bool(const forged_segment&)>& act) {
    const forged_segment seg(forgery{});
    seg.name(rogue_plugin, "breaker");
    int s = -1;
    r.status = register_segment(rt, seg, s);
    if (r.status != std::uint32_t(ly::welcome_status::accepted)) return fail(r, "not accepted");
    if (!act(seg)) return fail(r, "the agent did not take the first step");
    ctl.send(r);
    ctl.hold();
}

TEST(hostile, impossible_lane_indices_alone_quarantine_the_producer) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    impostor breaker([&](report& r, const control& ctl) {
        break_after_registering(r, ctl, rt, [](const forged_segment& seg) {
            seg.publish(1, seg.geo().lane_slots + 1);  // more published than a lane holds
            return true;
        });
    });
    const auto r = breaker.next();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->ok) << r->note;
    ASSERT_TRUE(
        wait_until([&] { return producer_record(a, breaker.pid())["state"] == "quarantined"; }, 5s))
        << a.producers_json();
    const metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_producers", {{"state", "quarantined"}}), 1);
    EXPECT_EQ(m.sum("plugmon_ring_events_dropped_total", {{"reason", "invalid"}}), 0)
        << "no event was lost: the broken lane has no countable slots and the others are empty";
    EXPECT_EQ(producers(a)["totals"]["producers_quarantined"].get<std::uint64_t>(), 1u)
        << "the quarantine is counted as a quarantine";
    EXPECT_EQ(m.sum("plugmon_agent_events_drained_total"), 0) << "nothing of the lane was read";
    EXPECT_TRUE(healthy(a));
    breaker.release();
    EXPECT_TRUE(breaker.wait());
    EXPECT_TRUE(wait_until([&] { return !producer_record(a, breaker.pid(), true).is_null(); }, 5s));
    EXPECT_TRUE(wait_until([&] { return impostor_memfds_held(a.proc().pid()) == 0; }, 5s));
    EXPECT_EQ(a.stop(), 0);
}

TEST(hostile, drop_counters_going_backwards_alone_quarantine_the_producer) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    impostor breaker([&](report& r, const control& ctl) {
        break_after_registering(r, ctl, rt, [](const forged_segment& seg) {
            seg.lane(0).dropped_full.store(10);
            const auto end = std::chrono::steady_clock::now() + 5s;
            while (seg.lane(0).drops_acked.load() != 10) {  // the agent reported them
                if (std::chrono::steady_clock::now() > end) return false;
                std::this_thread::sleep_for(1ms);
            }
            seg.lane(0).dropped_full.store(4);  // fewer than any agent already reported
            return true;
        });
    });
    const auto r = breaker.next();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->ok) << r->note;
    ASSERT_TRUE(
        wait_until([&] { return producer_record(a, breaker.pid())["state"] == "quarantined"; }, 5s))
        << a.producers_json();
    EXPECT_EQ(producer_record(a, breaker.pid())["dropped_full"], 10) << "the sound report stands";
    const metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_producers", {{"state", "quarantined"}}), 1);
    EXPECT_EQ(m.sum("plugmon_ring_events_dropped_total", {{"reason", "full"}}), 10);
    EXPECT_TRUE(healthy(a));
    breaker.release();
    EXPECT_TRUE(breaker.wait());
    EXPECT_EQ(a.stop(), 0);
}

// ---- c. resizing a registered segment ----

TEST(hostile, sealed_segment_cannot_be_resized_after_registration_and_the_agent_keeps_serving) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    impostor resizer([&](report& r, const control& ctl) {
        const forged_segment seg(forgery{});
        seg.name(rogue_plugin, "resizer");
        seg.name(rogue_op, "SELECT");
        seg.name(rogue_table, "t");
        int s = -1;
        r.status = register_segment(rt, seg, s);
        if (r.status != std::uint32_t(ly::welcome_status::accepted)) return fail(r, "not accepted");
        auto events = [&](std::uint64_t from, std::uint64_t to) {
            for (std::uint64_t i = from; i < to; ++i)
                seg.put(0, i, query_at(i, rogue_plugin, rogue_op, rogue_table));
            seg.publish(0, to);
            return seg.wait_consumed();
        };
        if (!events(0, 50)) return fail(r, "not drained");
        auto attempt = [](int rc) { return rc == 0 ? 0 : errno; };
        r.err[0] = attempt(::ftruncate(seg.fd(), off_t(ly::header_size)));
        r.err[1] = attempt(::ftruncate(seg.fd(), 0));
        r.err[2] = attempt(::ftruncate(seg.fd(), off_t(seg.size() * 2)));
        r.err[3] = attempt(::fallocate(seg.fd(), 0, off_t(seg.size()), 4096));
        struct stat st {};
        ::fstat(seg.fd(), &st);
        r.n[0] = std::uint64_t(st.st_size);
        r.n[1] = seg.size();
        if (!events(50, 60)) return fail(r, "not drained after the resize attempts");
        ctl.send(r);
        ctl.hold();
    });
    const auto r = resizer.next();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->ok) << r->note;
    EXPECT_EQ(r->err[0], EPERM) << "shrinking a sealed memfd must fail";
    EXPECT_EQ(r->err[1], EPERM);
    EXPECT_EQ(r->err[2], EPERM) << "growing a sealed memfd must fail";
    EXPECT_EQ(r->err[3], EPERM);
    EXPECT_EQ(r->n[0], r->n[1]) << "the size did not change";
    const json live = producer_record(a, resizer.pid());
    ASSERT_FALSE(live.is_null()) << a.producers_json();
    EXPECT_EQ(live["state"], "attached");
    EXPECT_EQ(live["drained"].get<std::uint64_t>(), 60u);
    EXPECT_TRUE(healthy(a));
    resizer.release();
    ASSERT_TRUE(resizer.wait());
    ASSERT_TRUE(
        wait_until([&] { return !producer_record(a, resizer.pid(), true).is_null(); }, 10s));
    const json f = producer_record(a, resizer.pid(), true);
    EXPECT_EQ(f["drained"].get<std::uint64_t>(), 60u);
    EXPECT_EQ(f["invalid"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(a.scrape().sum("plugmon_queries_total", {{"plugin", "resizer"}}), 60);
    EXPECT_TRUE(wait_until([&] { return impostor_memfds_held(a.proc().pid()) == 0; }, 5s))
        << "a finished producer's segment is released";
    EXPECT_TRUE(healthy(a));
    EXPECT_EQ(a.stop(), 0);
}

// ---- d. a connection that never says hello ----

TEST(hostile, silent_connection_is_closed_after_the_hello_timeout_without_blocking_anyone) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    const auto t0 = std::chrono::steady_clock::now();
    const int silent = connect_agent(rt);
    ASSERT_GE(silent, 0);

    // While it hangs: the HTTP side answers, and a real probe registers and is drained.
    EXPECT_TRUE(healthy(a));
    EXPECT_FALSE(a.metrics_text().empty());
    loadgen_run patient(dir, "patient", rt,
                        {"--processes", "1", "--threads", "1", "--events", "1000", "--plugins", "1",
                         "--plugin-prefix", "patient-", "--wait-attached", "3s"});
    ASSERT_EQ(patient.finish(), 0) << patient.log();
    ASSERT_EQ(patient.children().size(), 1u);
    EXPECT_TRUE(patient.children()[0]["attached"].get<bool>()) << patient.log();
    const pid_t ppid = patient.children()[0]["pid"].get<pid_t>();
    ASSERT_TRUE(wait_until([&] { return !producer_record(a, ppid, true).is_null(); }, 3s))
        << a.producers_json();
    EXPECT_EQ(a.scrape().sum("plugmon_queries_total", {{"plugin", "patient-0"}}), 1000);

    // All of that happened while the silent connection was still open.
    char byte;
    ASSERT_LT(std::chrono::steady_clock::now() - t0, 4500ms) << "too slow to show anything";
    const ssize_t early = ::recv(silent, &byte, 1, MSG_DONTWAIT);
    const int early_errno = errno;
    EXPECT_EQ(early, -1);
    EXPECT_TRUE(early_errno == EAGAIN || early_errno == EWOULDBLOCK) << std::strerror(early_errno);

    // Then the agent hangs up on it: end of file, no welcome.
    timeval tv{15, 0};
    ::setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::recv(silent, &byte, 1, 0), 0) << "the agent must close a connection without hello";
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 4500ms);
    EXPECT_LT(waited, 10s);
    ::close(silent);
    EXPECT_TRUE(healthy(a));
    EXPECT_EQ(a.stop(), 0);
}

// ---- e. names that would break the exposition ----

TEST(hostile, ill_formed_names_are_sanitised_before_they_reach_metrics_and_the_api) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    impostor namer([&](report& r, const control& ctl) {
        const forged_segment seg(forgery{});
        seg.name(2, "over\xc0\xaflong");           // overlong '/'
        seg.name(3, "half\xed\xa0\x80surrogate");  // UTF-16 surrogate
        seg.name(4,
                 "q\"b\\n\nl\x85"
                 "c1\xc2\x85");  // quote, backslash, newline, stray byte, C1
        seg.name(5, std::string(ly::name_max_length, '\xff'));
        int s = -1;
        r.status = register_segment(rt, seg, s);
        if (r.status != std::uint32_t(ly::welcome_status::accepted)) return fail(r, "not accepted");
        ly::slot q = query_at(0, 2, 3, 4);
        q.tenant = 5;
        seg.put(0, 0, q);
        ly::slot c{};
        c.seq = 2;
        c.kind = std::uint8_t(ly::event_kind::counter);
        c.plugin = 3;
        c.op = 4;
        c.value = 1;
        seg.put(0, 1, c);
        seg.publish(0, 2);
        if (!seg.wait_consumed()) return fail(r, "not drained");
        ctl.send(r);
        ctl.hold();
    });
    const auto r = namer.next();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->ok) << r->note;
    ASSERT_TRUE(wait_until([&] { return producer_record(a, namer.pid())["drained"] == 2; }, 5s))
        << a.producers_json();
    const metrics m = a.scrape();
    EXPECT_EQ(
        m.sum("plugmon_queries_total", {{"plugin", "over??long"}, {"op", "half???surrogate"}}), 1);
    EXPECT_EQ(m.sum("plugmon_queries_total", {{"tenant", std::string(ly::name_max_length, '?')}}),
              1);
    std::string out;
    EXPECT_EQ(promtool_check_metrics(dir.path(), a.metrics_text(), out), 0)
        << "one producer's names must not make the whole exposition unreadable: " << out;
    int status = 0;
    const auto plugins = http_get(a.port(), "/api/v1/plugins", &status);
    EXPECT_EQ(status, 200);
    ASSERT_TRUE(plugins.has_value());
    EXPECT_TRUE(json::accept(*plugins)) << *plugins;
    namer.release();
    EXPECT_TRUE(namer.wait());
    EXPECT_TRUE(healthy(a));
    EXPECT_EQ(a.stop(), 0);
}

}  // namespace
