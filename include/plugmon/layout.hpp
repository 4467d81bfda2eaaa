// The byte layout of a probe segment and of the agent socket's messages: the one contract
// shared by the probe (writer) and the agent (reader). Nothing else defines these bytes.
//
// A segment is one memfd per plugin process, created by the probe at first use, sealed against
// shrinking and growing, and handed to the agent over its Unix socket (SCM_RIGHTS).
//
//   offset 0                     segment_header (4096 bytes)
//   ┌──────────────────────────────────────────────────────────────────────────────┐
//   │ line 0: magic, layout_version, header_size, lane_count, lane_slots,          │
//   │         name_capacity, name_entry_size, clock, creator_pid, segment_size,    │
//   │         lanes_offset, names_offset, slots_offset, statement_capacity,        │
//   │         statement_entry_size, statements_offset                              │
//   │ line 1: ready  (== layout_version, written LAST by the probe; 0 = not ready) │
//   │ line 2: producer: names_published, state (running / closed), helper lane,    │
//   │         statements_published                                                 │
//   │ line 3: agent:    attach_count, agent_pid                                    │
//   └──────────────────────────────────────────────────────────────────────────────┘
//   lanes_offset                 lane_header[lane_count + 1] (256 bytes each; the
//                                last one is the shared multi-producer lane)
//   ┌──────────────────────────── producer line (128) ─┬── consumer line (128) ────┐
//   │ owner, head (published / claimed), dropped_full  │ tail, drops_acked, ...    │
//   └──────────────────────────────────────────────────┴───────────────────────────┘
//   names_offset                 name_entry[name_capacity] (128 bytes each)
//   ┌──────────────────────────────────────────────────────────────────────────────┐
//   │ length (u32, written last; 0 = empty) │ text[124] (not NUL-terminated)       │
//   └──────────────────────────────────────────────────────────────────────────────┘
//   slots_offset                 slot[(lane_count + 1) * lane_slots] (64 bytes each),
//                                lane i owns slots [i * lane_slots, (i + 1) * lane_slots)
//   statements_offset            statement_entry[statement_capacity] (1024 bytes each)
//   ┌──────────────────────────────────────────────────────────────────────────────┐
//   │ length (u32, written last) │ pad │ fingerprint (u64) │ text[1008] normalised │
//   └──────────────────────────────────────────────────────────────────────────────┘
//   A query slot's aux is 0 (no statement) or a statement id: entry aux - 1.
//
//   slot (64 bytes)
//   ┌─────┬────┬─────┬────┬────────┬────┬───────┬────────┬─────┬─────┬───────┬──────────┬───────┬────────┐
//   │ seq │kind│flags│res │ plugin │ op │ table │ tenant │ aux │ pad │ start │ duration │ value │ value2 │
//   │ u32 │ u8 │ u8  │u16 │  u32   │u32 │  u32  │  u32   │ u32 │ u32 │  u64  │   u64    │  u64  │  u64   │
//   └─────┴────┴─────┴────┴────────┴────┴───────┴────────┴─────┴─────┴───────┴──────────┴───────┴────────┘
//   0     4    5     6    8        12   16      20       24    28    32      40         48      56
//
// Protocol of a per-thread lane (single producer, single consumer, after folly's
// ProducerConsumerQueue): the producer writes slot[head % lane_slots] completely, including
// seq = uint32(head + 1), then publishes with head.store(head + 1, release). The consumer loads
// head (acquire), reads slots [tail, head), then stores tail (release). The producer reloads
// tail (acquire) only when its cached copy says the lane is full. An event is therefore either
// published whole or not at all: a producer killed mid-write leaves nothing torn on its lane.
//
// Protocol of the shared lane (used only when all per-thread lanes are taken): producers claim
// an index with a CAS on head, write the slot, then publish it with seq.store(index + 1, release).
// The consumer reads seq (acquire) at tail and consumes while it matches. A producer that dies
// between claim and publish leaves a claimed, unpublished slot: the agent counts it as `torn`.
//
// Drops: a producer that finds its lane full increments dropped_full on that lane (a plain
// store on per-thread lanes, which have one writer; fetch_add on the shared lane). The agent
// reports dropped_full - drops_acked and then advances drops_acked, so a restarted agent
// reports only what no agent has reported before.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace plugmon::layout {

/// "PLUGMON1" read as a little-endian u64.
inline constexpr std::uint64_t segment_magic = 0x314e4f4d47554c50ull;
/// Bumped on any change to the bytes described above; the agent refuses other versions.
inline constexpr std::uint32_t layout_version = 2;

/// Fixed separation between producer-written and consumer-written words. Both sides must agree,
/// so this is a constant, not std::hardware_destructive_interference_size (which varies with
/// compiler flags). 128 also keeps the adjacent-line prefetcher from pairing the two lines.
inline constexpr std::size_t line = 128;
inline constexpr std::size_t slot_size = 64;
inline constexpr std::size_t header_size = 4096;
inline constexpr std::size_t lane_header_size = 2 * line;
inline constexpr std::size_t name_entry_size = 128;
inline constexpr std::size_t name_max_length = name_entry_size - sizeof(std::uint32_t);
inline constexpr std::size_t statement_entry_size = 1024;
inline constexpr std::size_t statement_max_length = statement_entry_size - 16;
inline constexpr std::uint32_t default_statement_capacity = 256;

/// Limits the agent enforces on a segment's self-declared geometry.
inline constexpr std::uint32_t max_lanes = 1024;
inline constexpr std::uint32_t min_lane_slots = 64;
inline constexpr std::uint32_t max_lane_slots = 1u << 22;
inline constexpr std::uint32_t max_name_capacity = 1u << 16;
inline constexpr std::uint32_t max_statement_capacity = 1u << 14;
inline constexpr std::uint64_t max_segment_size = 1ull << 34;

/// 2^64 / φ (odd): the multiplier of Fibonacci hashing, whose top bits are a well-spread bucket
/// index, and a seed with no structure. Not part of the bytes above: it is here so that the probe
/// (header, allocation accounting, statement fingerprint) and the agent spell it once.
inline constexpr std::uint64_t fibonacci_multiplier = 0x9e3779b97f4a7c15ull;

/// Reserved name ids. Id 0 is the empty name (no tenant, no table); id 1 is where names fold when
/// the interning table is full. Real names start at first_name_id.
inline constexpr std::uint32_t name_empty = 0;
inline constexpr std::uint32_t name_overflow = 1;
inline constexpr std::uint32_t first_name_id = 2;
inline constexpr char overflow_label[] = "__overflow__";

enum class clock_kind : std::uint32_t {
    monotonic_ns = 0,  ///< start/duration are CLOCK_MONOTONIC nanoseconds
    tsc = 1,           ///< start/duration are invariant-TSC ticks; the agent converts
};

enum class segment_state : std::uint32_t { running = 0, closed = 1 };

enum class event_kind : std::uint8_t {
    none = 0,
    query =
        1,  ///< op, table, tenant; duration; value = rows; flags & flag_error; aux = statement id or 0
    execution = 2,  ///< tenant; duration (wall); value2 = thread CPU ns; flags & flag_error
    counter = 3,    ///< op = counter name; value = increment
    pool = 4,       ///< value = in_use | idle << 32; value2 = waiting
    resource = 5,   ///< helper-thread process sample; aux = resource_field; value = reading
    last = resource,
};

/// Fields of a resource sample (event_kind::resource, in slot.aux).
enum class resource_field : std::uint32_t {
    rss_bytes = 0,
    cpu_ns = 1,
    open_fds = 2,
    threads = 3,
    read_bytes = 4,
    write_bytes = 5,
    /// Heap bytes attributed to the plugin in slot.plugin (opt-in allocation accounting):
    /// value = allocated since start, value2 = freed since start.
    alloc_bytes = 6,
    last = alloc_bytes,
};

inline constexpr std::uint8_t flag_error = 1u << 0;        ///< the query or execution failed
inline constexpr std::uint8_t flag_duration_ns = 1u << 1;  ///< duration is ns even on a tsc segment
inline constexpr std::uint8_t known_flags = flag_error | flag_duration_ns;

struct slot {
    std::uint32_t seq;  // uint32(index + 1) when published; see the lane protocols above
    std::uint8_t kind;  // event_kind
    std::uint8_t flags;
    std::uint16_t reserved;
    std::uint32_t plugin;
    std::uint32_t op;
    std::uint32_t table;
    std::uint32_t tenant;
    std::uint32_t aux;
    std::uint32_t pad;
    std::uint64_t start;
    std::uint64_t duration;
    std::uint64_t value;
    std::uint64_t value2;
};

struct alignas(64) segment_header {
    // line 0: geometry, written once before `ready`
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t header_bytes;
    std::uint32_t lane_count;  // per-thread lanes; one shared lane follows them
    std::uint32_t lane_slots;  // power of two
    std::uint32_t name_capacity;
    std::uint32_t name_entry_bytes;
    std::uint32_t clock;  // clock_kind
    std::uint32_t creator_pid;
    std::uint64_t segment_size;
    std::uint64_t lanes_offset;
    std::uint64_t names_offset;
    std::uint64_t slots_offset;
    std::uint32_t statement_capacity;
    std::uint32_t statement_entry_bytes;
    std::uint64_t statements_offset;
    char pad0_[line - 88];
    // line 1: written last by the probe (release); the agent acquires it before reading line 0.
    std::atomic<std::uint32_t> ready;
    char pad1_[line - 4];
    // line 2: producer-owned
    std::atomic<std::uint32_t> names_published;  // release by the probe after each name entry
    std::atomic<std::uint32_t> state;            // segment_state
    std::atomic<std::uint32_t> helper_lane;      // lane used by the probe's helper thread, or ~0
    std::atomic<std::uint32_t> statements_published;  // release by the probe after each entry
    char pad2_[line - 16];
    // line 3: agent-owned
    std::atomic<std::uint32_t> attach_count;
    std::atomic<std::uint32_t> agent_pid;
    char pad3_[line - 8];
    char reserved_[header_size - 4 * line];
};

struct alignas(64) lane_header {
    // producer line
    std::atomic<std::uint32_t> owner;  // 0 = free, else the owning thread's id (tid)
    std::uint32_t pad0_;
    std::atomic<std::uint64_t> head;          // per-thread lane: published count; shared: claimed
    std::atomic<std::uint64_t> dropped_full;  // events dropped because the lane was full
    char pad1_[line - 24];
    // consumer line
    std::atomic<std::uint64_t> tail;         // consumed count; release by the agent
    std::atomic<std::uint64_t> drops_acked;  // dropped_full already reported by some agent
    char pad2_[line - 16];
};

struct name_entry {
    std::atomic<std::uint32_t> length;  // written last (release); 0 = not yet published
    char text[name_max_length];
};

struct statement_entry {
    std::atomic<std::uint32_t> length;  // written last (release); 0 = not yet published
    std::uint32_t pad;
    std::uint64_t fingerprint;  // of the normalised text, computed by the probe
    char text[statement_max_length];
};

static_assert(sizeof(slot) == slot_size);
static_assert(offsetof(slot, plugin) == 8 && offsetof(slot, aux) == 24 &&
              offsetof(slot, start) == 32);
static_assert(offsetof(slot, value2) == 56);
static_assert(std::is_trivially_copyable_v<slot>);
static_assert(sizeof(segment_header) == header_size);
static_assert(offsetof(segment_header, ready) == line);
static_assert(offsetof(segment_header, names_published) == 2 * line);
static_assert(offsetof(segment_header, attach_count) == 3 * line);
static_assert(sizeof(lane_header) == lane_header_size);
static_assert(offsetof(lane_header, tail) == line);
static_assert(sizeof(name_entry) == name_entry_size);
static_assert(sizeof(statement_entry) == statement_entry_size);
static_assert(offsetof(segment_header, statements_offset) == 80);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<segment_header> && std::is_standard_layout_v<lane_header>);

/// Geometry of a segment, computed identically by the probe (to create) and the agent (to check).
struct geometry {
    std::uint32_t lane_count;
    std::uint32_t lane_slots;
    std::uint32_t name_capacity;
    std::uint32_t statement_capacity;
    std::uint64_t lanes_offset;
    std::uint64_t names_offset;
    std::uint64_t slots_offset;
    std::uint64_t statements_offset;
    std::uint64_t segment_size;
};

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
    return (v + to - 1) / to * to;
}

constexpr geometry make_geometry(std::uint32_t lane_count, std::uint32_t lane_slots,
                                 std::uint32_t name_capacity,
                                 std::uint32_t statement_capacity = default_statement_capacity) {
    geometry g{lane_count, lane_slots, name_capacity, statement_capacity, 0, 0, 0, 0, 0};
    g.lanes_offset = header_size;
    g.names_offset =
        round_up(g.lanes_offset + std::uint64_t(lane_count + 1) * lane_header_size, 4096);
    g.slots_offset =
        round_up(g.names_offset + std::uint64_t(name_capacity) * name_entry_size, 4096);
    g.statements_offset =
        round_up(g.slots_offset + std::uint64_t(lane_count + 1) * lane_slots * slot_size, 4096);
    g.segment_size = round_up(
        g.statements_offset + std::uint64_t(statement_capacity) * statement_entry_size, 4096);
    return g;
}

/// Writes a geometry into line 0 of a header (the probe, and tests that build segments by hand).
inline void write_geometry(segment_header& h, const geometry& g) {
    h.header_bytes = header_size;
    h.lane_count = g.lane_count;
    h.lane_slots = g.lane_slots;
    h.name_capacity = g.name_capacity;
    h.name_entry_bytes = name_entry_size;
    h.statement_capacity = g.statement_capacity;
    h.statement_entry_bytes = statement_entry_size;
    h.segment_size = g.segment_size;
    h.lanes_offset = g.lanes_offset;
    h.names_offset = g.names_offset;
    h.slots_offset = g.slots_offset;
    h.statements_offset = g.statements_offset;
}

constexpr bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// ---- agent socket protocol (SOCK_SEQPACKET, one message per datagram) ----

inline constexpr char socket_name[] = "agent.sock";
inline constexpr std::uint32_t hello_magic = 0x504d4831;  // "1HMP"
inline constexpr std::uint32_t protocol_version = 1;

enum class message_type : std::uint32_t {
    hello = 1,    ///< probe → agent, carries the segment fd (SCM_RIGHTS)
    welcome = 2,  ///< agent → probe, the answer to hello
    bye = 3,      ///< probe → agent, clean exit: every lane is final
};

enum class welcome_status : std::uint32_t {
    accepted = 0,
    bad_message = 1,
    bad_segment = 2,  ///< magic, version, sizes or seals refused
    too_many = 3,     ///< producer limit reached
    duplicate = 4,    ///< this segment is already registered
    agent_closing = 5,
};

struct hello_message {
    std::uint32_t magic;
    std::uint32_t type;  // message_type::hello
    std::uint32_t version;
    std::uint32_t pid;  // informative only: the agent uses SO_PEERCRED
    std::uint64_t segment_size;
};

struct welcome_message {
    std::uint32_t magic;
    std::uint32_t type;  // message_type::welcome
    std::uint32_t status;
    std::uint32_t agent_pid;
};

struct bye_message {
    std::uint32_t magic;
    std::uint32_t type;  // message_type::bye
};

static_assert(sizeof(hello_message) == 24 && sizeof(welcome_message) == 16);

}  // namespace plugmon::layout
