// The audit trail: one entry for every mutating API call and every reload, written as one
// structured log line (component "audit") and kept, the most recent first, for GET /api/v1/audit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace plugmon::agent::audit {

/// What happened, by whom, from where. Never holds a secret or a request body.
struct entry {
    std::chrono::system_clock::time_point at{};
    std::uint64_t seq = 0;  ///< assigned by trail::record: 1, 2, ... per agent run
    std::string actor;      ///< the token's name, "-" (none), "SIGHUP", "http" (a reload)
    std::string client;     ///< the remote address, or "-" (a signal)
    std::string action;     ///< the route, "POST /api/v1/silences", or "reload"
    std::string target;     ///< the concrete path, or the configuration that was reloaded
    unsigned status = 0;    ///< the HTTP status; a reload: 200 applied, 500 refused
    std::string detail;     ///< short: a reload's applied / restart_required keys or refusal
};

/// The entry as a JSON object: at (RFC 3339 UTC, milliseconds), seq, actor, client, action,
/// target, status, detail. Thread-safe (pure).
nlohmann::json to_json(const entry& e);

/// The detail of an applied reload: "applied=a,b restart_required=c" ("-" for no key).
/// Thread-safe (pure).
std::string reload_detail(const std::vector<std::string>& applied,
                          const std::vector<std::string>& restart_required);
/// The detail of a refused reload: "refused: <why>" (record() shortens it). Thread-safe (pure).
std::string refusal_detail(std::string_view why);

/// The agent's audit trail. Thread-safe (one mutex; the log line is written outside it).
class trail {
public:
    /// Keeps the last `capacity` entries (at least 1).
    explicit trail(std::size_t capacity = default_capacity);

    /// Stamps `e` with the next sequence number (and the time, when unset), writes its audit
    /// log line and keeps it. Strings are cut to a bounded length, and control characters and
    /// invalid UTF-8 replaced, so a client cannot forge lines and the entry stays valid JSON.
    /// Never throws (a failure drops the entry).
    void record(entry e) noexcept;

    /// At most `limit` entries, newest first. May throw std::bad_alloc.
    std::vector<entry> recent(std::size_t limit) const;

    /// Entries recorded since start (also those no longer kept).
    std::uint64_t recorded() const;

    /// From now on, every entry recorded is also queued for take_pending() (the store's way to
    /// plugmon.audit), at most `max` of them (at least 1): beyond, the oldest is dropped and
    /// counted in pending_dropped(). Without a call nothing is queued (no store, no growth).
    void keep_pending(std::size_t max = default_pending_max);
    /// The queued entries, oldest first, and an empty queue. Takes the mutex only to swap the
    /// queue out, so record() on an HTTP thread never waits for the caller's work. May throw
    /// std::bad_alloc.
    std::vector<entry> take_pending();
    /// Entries the pending queue dropped because nobody took them in time.
    std::uint64_t pending_dropped() const;

    static constexpr std::size_t default_capacity = 1000;
    /// A flush window's worth of entries and far beyond: a store that takes them at every window
    /// (seconds apart) never reaches it.
    static constexpr std::size_t default_pending_max = 10000;

private:
    std::size_t capacity_;
    mutable std::mutex mu_;
    std::deque<entry> entries_;          // guarded by mu_; oldest first
    std::uint64_t next_seq_ = 1;         // guarded by mu_
    std::size_t pending_max_ = 0;        // guarded by mu_; 0: nothing queued
    std::deque<entry> pending_;          // guarded by mu_; oldest first
    std::uint64_t pending_dropped_ = 0;  // guarded by mu_
};

}  // namespace plugmon::agent::audit
