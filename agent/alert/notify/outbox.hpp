// The notifiers' durable outbox: one CRC-framed record per notification (the store spool's
// frame), fsync'ed before any delivery attempt; dead letters beside it in dead/.
#pragma once

#include "alert/model.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace plugmon::agent::alert::notify {

/// A notification as JSON (every field of the model) and back. notification_from_json throws
/// std::invalid_argument (or nlohmann::json::exception) naming a bad field.
nlohmann::json to_json(const notification& n);
notification notification_from_json(const nlohmann::json& j);

/// One notification in the outbox, with its delivery bookkeeping.
struct outbox_record {
    std::uint64_t seq = 0;  ///< the record's name; increases in append order, across restarts
    std::string group;      ///< records of one message share it (the message's webhook-id)
    notification n;
    int attempts = 0;
    unsigned last_status = 0;
    std::string last_error;
    time_point dead_at{};  ///< when dead-lettered
};

/// The outbox directory:
///   <dir>/<seq, 20 digits>.rec   pending notifications, one record each
///   <dir>/dead/<seq>.rec         dead letters (with attempts and the last error)
///   <dir>/*.corrupt              records that failed validation, kept for inspection
///   <dir>/<name>.json            small state files written with write_state (atomic rename)
/// Each record is store::encode_record(seq, 1, json) — the spool's 40-byte header with CRCs —
/// written to a temporary file, fsync'ed, renamed, and the directory fsync'ed once per append.
/// One record per notification rather than per batch: notifications of one batch leave at
/// different times (per receiver, delivered or dead-lettered one by one), so removal stays a
/// single unlink and nothing needs compaction; the cost of a batch is still one directory fsync.
///
/// Thread safety: every member may be called from any thread (an internal mutex serialises
/// them); the statistics are atomics. Blocks on the local file system only.
class outbox {
public:
    /// Creates (mode 0700) and locks the directory and dead/ inside it; throws std::system_error
    /// naming the path when that fails or another process holds the lock.
    explicit outbox(std::string dir);
    ~outbox();
    outbox(const outbox&) = delete;
    outbox& operator=(const outbox&) = delete;

    /// The pending records of a previous run, oldest first, and the dead letters (kept in
    /// memory). A record that fails validation is renamed to *.corrupt and counted. Call once,
    /// before the first append.
    std::vector<outbox_record> load();

    /// Assigns seq to every record and stores them durably. Throws std::system_error naming the
    /// file (then none of the records should be considered stored).
    void append(std::vector<outbox_record>& records);

    /// Removes a delivered (or superseded) record. Unknown seqs are ignored.
    void remove(std::uint64_t seq);

    /// Moves a record to dead/ with its bookkeeping (durably), removing it from the queue.
    void bury(const outbox_record& r);

    /// The dead letters, oldest first.
    std::vector<outbox_record> dead() const;

    /// Takes the dead letter whose notification id is `id` out of dead/ and appends it as a new
    /// pending record (attempts reset). nullopt when there is no such dead letter.
    std::optional<outbox_record> resurrect(const std::string& id);

    /// Writes <dir>/<name> atomically (temporary file, fsync, rename, directory fsync).
    void write_state(const std::string& name, std::string_view bytes);
    /// Reads <dir>/<name>; nullopt when it does not exist.
    std::optional<std::string> read_state(const std::string& name) const;

    std::uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
    std::uint64_t corrupt_records() const { return corrupt_.load(std::memory_order_relaxed); }
    const std::string& dir() const { return dir_; }

private:
    void append_locked(std::vector<outbox_record>& records);  // mu_ held
    std::optional<outbox_record> read_record(const std::string& path, std::uint64_t seq);
    void write_durably(const std::string& path, std::string_view bytes, bool sync_dir);
    void sync_dirs();
    std::string record_path(std::uint64_t seq, bool dead) const;

    std::string dir_;
    int lock_fd_ = -1;
    mutable std::mutex mu_;
    std::uint64_t next_seq_ = 1;                         // guarded by mu_
    std::map<std::uint64_t, std::uint64_t> sizes_;       // seq -> file bytes; guarded by mu_
    std::map<std::uint64_t, outbox_record> dead_;        // guarded by mu_
    std::map<std::uint64_t, std::uint64_t> dead_sizes_;  // guarded by mu_
    std::atomic<std::uint64_t> bytes_{0}, corrupt_{0};
};

}  // namespace plugmon::agent::alert::notify
