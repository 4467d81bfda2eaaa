// The bounded on-disk spool: a write-ahead log of batches, replayed oldest first, losses counted.
#pragma once

#include "store/write/batch.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent::store {

/// Why the spool discarded a batch.
enum class drop_reason {
    full,     ///< evicted (oldest first) to stay within max_bytes, or itself larger than max_bytes
    corrupt,  ///< a record whose frame, checksum or payload failed validation (or vanished)
};

/// "full" or "corrupt".
std::string_view to_string(drop_reason r) noexcept;

/// The record frame on disk (version 1): a 40-byte header, then the payload from encode_batch.
/// Every integer is little-endian; a CRC is zlib's crc32 (ISO-HDLC, as in gzip and PNG).
///
///    0       4         6          8               16            24            32            36         40
///   +-------+---------+----------+---------------+-------------+-------------+-------------+----------+
///   | PMSR  | ver = 1 | hdr = 40 | payload bytes |  record id  |    rows     | payload crc | hdr crc  |
///   | 4 B   | u16     | u16      | u64           |  u64        |  u64        | u32         | u32 over |
///   |       |         |          |               | (= the name)| batch::rows | crc32       | 0 .. 35  |
///   +-------+---------+----------+---------------+-------------+-------------+-------------+----------+
///   | payload: exactly `payload bytes` bytes, nothing after it                                         |
///   +--------------------------------------------------------------------------------------------------+
///
/// The header CRC catches every single-bit error in the header, so a record whose header passes
/// can report its row count even when its payload is damaged.
inline constexpr char record_magic[4] = {'P', 'M', 'S', 'R'};
inline constexpr std::uint16_t record_format_version = 1;
inline constexpr std::size_t record_header_size = 40;

/// The validated fields of a record header.
struct record_header {
    std::uint64_t payload_bytes = 0;
    std::uint64_t id = 0;
    std::uint64_t rows = 0;
    std::uint32_t payload_crc = 0;
};

/// The whole record (header and payload) for `payload`, as stored in a record file.
/// Thread safety: reentrant.
std::string encode_record(std::uint64_t id, std::uint64_t rows, std::string_view payload);

/// Validates the first record_header_size bytes of `bytes` (magic, version, header size, header
/// CRC). Throws spool_error naming the field ("spool: record header: magic: ..."). Reads nothing
/// beyond the header. Thread safety: reentrant.
record_header parse_record_header(std::string_view bytes);

/// Given a header from parse_record_header and the whole record, returns the payload after
/// checking its length (exactly payload_bytes after the header) and its CRC; throws spool_error
/// naming the field otherwise. Thread safety: reentrant.
std::string_view record_payload(const record_header& h, std::string_view record);

/// A bounded on-disk queue of batches: the store's write-ahead log, and where batches wait while
/// PostgreSQL is unreachable. Records come back oldest first (record ids increase across
/// restarts), and every batch the spool discards is counted with its reason and its rows.
///
/// Design: one file per record, named by its id ("00000000000000000042.rec", 20 digits so that
/// name order is id order). A record is written to "<id>.rec.tmp", fsync'ed (when `sync`), and
/// renamed into place, then the directory is fsync'ed: a crash at any moment leaves either the
/// complete record or a temporary file, which the next start removes, so torn writes never
/// become visible. Records are whole flush windows (a few per minute, kilobytes to megabytes
/// each), so a file per record costs little, while popping and evicting are a single unlink
/// each and need no compaction or head pointer that could itself be torn. A pop that a crash
/// undoes makes a batch replay once more; (host, run_id, seq) lets the database ignore it.
///
/// The directory is locked (flock) for the spool's lifetime, so two agents cannot share it.
/// Files whose names do not match the two patterns above are never touched.
///
/// Thread safety: every member function may be called from any thread; calls are serialised by
/// an internal mutex (so front() may wait for an append's fsync). The statistics are atomics and
/// never wait. Blocks only on the local file system.
class spool {
public:
    struct options {
        std::string dir;                         ///< created (mode 0700) if missing
        std::uint64_t max_bytes = 256ull << 20;  ///< the sum of the record files' sizes
        bool sync = true;                        ///< fsync records and the directory
    };

    /// Opens (creating if needed) the spool directory, locks it, removes stray temporary files
    /// left by a crash, and indexes the existing records (a previous run's) oldest first; if
    /// they exceed max_bytes, the oldest are dropped and counted as "full". Throws
    /// std::system_error (the message names the path) if the directory cannot be created,
    /// opened, listed or locked, and spool_error if max_bytes is zero.
    explicit spool(options opts);
    ~spool();
    spool(const spool&) = delete;
    spool& operator=(const spool&) = delete;

    /// Stores `b` as one record and returns its id (> 0). To stay within max_bytes the oldest
    /// records are then dropped and counted ("full"). A record larger than max_bytes is not
    /// stored but dropped and counted itself ("full"), and 0 is returned. Throws
    /// std::system_error naming the file if writing fails (ENOSPC, EIO, ...): then nothing was
    /// stored or dropped, and the caller still owns the batch (only if the final fsync of the
    /// directory fails is the record already in place; replaying it twice is harmless). Throws
    /// spool_error if the batch cannot be encoded.
    std::uint64_t append(const batch& b);

    struct entry {
        std::uint64_t id;
        batch b;
        std::uint64_t bytes;  ///< the record file's size
    };

    /// The oldest record, decoded; nullopt when the spool is empty. A record that fails to
    /// validate is removed and counted ("corrupt", with the header's row count if the header
    /// is intact, else 0) and the next one is tried. Does not remove the record: pop() does.
    /// Throws std::system_error if a record file exists but cannot be read.
    std::optional<entry> front();

    /// Removes record `id` once it is in the database. Idempotent: an unknown id, an id already
    /// popped or dropped, and 0 are ignored. Throws std::system_error if unlink fails other than
    /// with ENOENT.
    void pop(std::uint64_t id);

    /// The message of the last record found corrupt ("" if none), for the caller's log.
    std::string last_corruption() const;

    // Statistics: readable from any thread, never block.
    /// Bytes of the stored records (header + payload per record).
    std::uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
    /// Records stored.
    std::uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }
    /// Batches and rows dropped since this object was constructed.
    std::uint64_t dropped_batches(drop_reason r) const;
    std::uint64_t dropped_rows(drop_reason r) const;
    /// The same by name, "full" or "corrupt"; throws std::invalid_argument for other names.
    std::uint64_t dropped_batches(std::string_view reason) const;
    std::uint64_t dropped_rows(std::string_view reason) const;
    /// Records stored by append() since this object was constructed.
    std::uint64_t appended_total() const { return appended_.load(std::memory_order_relaxed); }

    /// The spool directory as given, without trailing slashes.
    const std::string& dir() const { return opts_.dir; }

private:
    struct record_info {
        std::uint64_t bytes = 0;
        std::optional<std::uint64_t> rows;  // known once the header has been read
    };

    void scan();         // constructor, no lock needed
    void enforce_cap();  // mu_ held
    void drop(std::map<std::uint64_t, record_info>::iterator it, drop_reason r,
              std::uint64_t rows);  // mu_ held
    std::string file_name(std::uint64_t id, bool temporary) const;
    void write_file(const std::string& name, std::string_view bytes);
    void sync_dir();

    options opts_;
    int dir_fd_ = -1;  // the directory, opened once: the lock, *at() calls and its fsync
    mutable std::mutex mu_;
    std::map<std::uint64_t, record_info> records_;  // guarded by mu_; ordered by id = append order
    std::uint64_t next_id_ = 1;                     // guarded by mu_
    std::string last_corruption_;                   // guarded by mu_

    std::atomic<std::uint64_t> bytes_{0}, batches_{0}, appended_{0};
    std::atomic<std::uint64_t> dropped_batches_[2] = {0, 0}, dropped_rows_[2] = {0, 0};
};

}  // namespace plugmon::agent::store
