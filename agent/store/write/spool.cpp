// The on-disk spool: one file per record (temp file, fsync, rename), indexed by id in memory.
#include "store/write/spool.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace plugmon::agent::store {

std::string_view to_string(drop_reason r) noexcept {
    return r == drop_reason::full ? "full" : "corrupt";
}

namespace {

constexpr std::size_t id_digits = 20;  // UINT64_MAX has 20 decimal digits
constexpr std::string_view record_suffix = ".rec";
constexpr std::string_view temp_suffix = ".rec.tmp";

std::uint32_t crc_of(std::string_view bytes) {
    return static_cast<std::uint32_t>(
        crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view in, std::size_t at, std::size_t bytes) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        v |= std::uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
    return v;
}

/// A name this spool owns: "<20 digits>.rec" (a record) or "<20 digits>.rec.tmp" (unfinished).
struct owned_name {
    std::uint64_t id = 0;
    bool temporary = false;
};

std::optional<owned_name> parse_name(std::string_view name) {
    owned_name n;
    if (name.size() == id_digits + temp_suffix.size() && name.substr(id_digits) == temp_suffix)
        n.temporary = true;
    else if (name.size() != id_digits + record_suffix.size() ||
             name.substr(id_digits) != record_suffix)
        return std::nullopt;
    for (std::size_t i = 0; i < id_digits; ++i)
        if (name[i] < '0' || name[i] > '9') return std::nullopt;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + id_digits, n.id);
    if (ec != std::errc{} || end != name.data() + id_digits || n.id == 0) return std::nullopt;
    return n;
}

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), what);
}

/// Reads up to `n` bytes at `offset`; returns fewer only at end of file.
std::size_t read_at(int fd, char* out, std::size_t n, off_t offset, const std::string& path) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::pread(fd, out + got, n - got, offset + static_cast<off_t>(got));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw_errno(errno, "spool: reading " + path);
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return got;
}

/// Closes on scope exit.
struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

std::string encode_record(std::uint64_t id, std::uint64_t rows, std::string_view payload) {
    std::string out;
    out.reserve(record_header_size + payload.size());
    out.append(record_magic, sizeof record_magic);
    put_le(out, record_format_version, 2);
    put_le(out, record_header_size, 2);
    put_le(out, payload.size(), 8);
    put_le(out, id, 8);
    put_le(out, rows, 8);
    put_le(out, crc_of(payload), 4);
    put_le(out, crc_of(out), 4);  // over bytes 0 .. 35
    out.append(payload);
    return out;
}

record_header parse_record_header(std::string_view bytes) {
    const auto fail = [](const char* field, const std::string& what) {
        throw spool_error(std::string("spool: record header: ") + field + ": " + what);
    };
    if (bytes.size() < 4 || bytes.substr(0, 4) != std::string_view(record_magic, 4))
        fail("magic", bytes.size() < 4 ? "truncated (" + std::to_string(bytes.size()) + " bytes)"
                                       : std::string("not a plugmon spool record"));
    if (bytes.size() < record_header_size)
        fail("length", "truncated (" + std::to_string(bytes.size()) + " of " +
                           std::to_string(record_header_size) + " bytes)");
    if (const auto v = get_le(bytes, 4, 2); v != record_format_version)
        fail("version", "unsupported format version " + std::to_string(v));
    if (const auto n = get_le(bytes, 6, 2); n != record_header_size)
        fail("header size", std::to_string(n) + ", expected " + std::to_string(record_header_size));
    const auto stored = static_cast<std::uint32_t>(get_le(bytes, 36, 4));
    if (const std::uint32_t computed = crc_of(bytes.substr(0, 36)); stored != computed)
        fail("header crc", "mismatch (stored " + std::to_string(stored) + ", computed " +
                               std::to_string(computed) + ")");
    record_header h;
    h.payload_bytes = get_le(bytes, 8, 8);
    h.id = get_le(bytes, 16, 8);
    h.rows = get_le(bytes, 24, 8);
    h.payload_crc = static_cast<std::uint32_t>(get_le(bytes, 32, 4));
    return h;
}

std::string_view record_payload(const record_header& h, std::string_view record) {
    if (record.size() < record_header_size || record.size() - record_header_size != h.payload_bytes)
        throw spool_error("spool: record payload: length: the header says " +
                          std::to_string(h.payload_bytes) + " bytes, the record holds " +
                          std::to_string(record.size() < record_header_size
                                             ? 0
                                             : record.size() - record_header_size));
    const std::string_view payload = record.substr(record_header_size);
    if (const std::uint32_t computed = crc_of(payload); computed != h.payload_crc)
        throw spool_error("spool: record payload: payload crc: mismatch (stored " +
                          std::to_string(h.payload_crc) + ", computed " + std::to_string(computed) +
                          ")");
    return payload;
}

spool::spool(options opts) : opts_(std::move(opts)) {
    while (opts_.dir.size() > 1 && opts_.dir.back() == '/') opts_.dir.pop_back();
    if (opts_.dir.empty()) throw spool_error("spool: dir: empty");
    if (opts_.max_bytes == 0) throw spool_error("spool: max_bytes: must be greater than 0");
    const std::filesystem::path dir(opts_.dir);
    std::error_code ec;
    if (dir.has_parent_path() && !std::filesystem::exists(dir)) {
        std::filesystem::create_directories(dir.parent_path(), ec);
        if (ec) throw std::system_error(ec, "spool: creating " + dir.parent_path().string());
    }
    if (::mkdir(opts_.dir.c_str(), 0700) == 0) {
        // Make the new directory's own entry durable too, or records in it could vanish with it.
        const std::string parent = dir.has_parent_path() ? dir.parent_path().string() : ".";
        if (const int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); pfd >= 0) {
            if (opts_.sync) ::fsync(pfd);
            ::close(pfd);
        }
    } else if (errno != EEXIST) {
        throw_errno(errno, "spool: creating directory " + opts_.dir);
    }
    dir_fd_ = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0) throw_errno(errno, "spool: opening directory " + opts_.dir);
    try {
        if (::flock(dir_fd_, LOCK_EX | LOCK_NB) != 0)
            throw_errno(errno, "spool: locking " + opts_.dir +
                                   (errno == EWOULDBLOCK ? " (another spool has it open)" : ""));
        if (::faccessat(dir_fd_, ".", W_OK | X_OK, AT_EACCESS) != 0)
            throw_errno(errno, "spool: directory " + opts_.dir + " is not writable");
        scan();
        std::lock_guard lock(mu_);
        enforce_cap();
    } catch (...) {
        ::close(dir_fd_);
        throw;
    }
}

spool::~spool() {
    if (dir_fd_ >= 0) ::close(dir_fd_);  // also releases the lock
}

void spool::scan() {
    const int fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno(errno, "spool: listing " + opts_.dir);
    DIR* d = ::fdopendir(fd);
    if (!d) {
        const int err = errno;
        ::close(fd);
        throw_errno(err, "spool: listing " + opts_.dir);
    }
    std::uint64_t max_id = 0, total = 0;
    int err = 0;
    for (;;) {
        errno = 0;
        const dirent* e = ::readdir(d);
        if (!e) {
            err = errno;
            break;
        }
        const auto name = parse_name(e->d_name);
        if (!name) continue;  // not ours: never touched
        struct stat st {};
        if (::fstatat(dir_fd_, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        max_id = std::max(max_id, name->id);
        if (name->temporary) {
            ::unlinkat(dir_fd_, e->d_name, 0);  // a write a crash cut short: never a record
            continue;
        }
        records_[name->id] = record_info{static_cast<std::uint64_t>(st.st_size), std::nullopt};
        total += static_cast<std::uint64_t>(st.st_size);
    }
    ::closedir(d);
    if (err != 0) throw_errno(err, "spool: listing " + opts_.dir);
    next_id_ = max_id + 1;
    bytes_.store(total, std::memory_order_relaxed);
    batches_.store(records_.size(), std::memory_order_relaxed);
}

std::string spool::file_name(std::uint64_t id, bool temporary) const {
    std::string digits = std::to_string(id);
    std::string name(id_digits - digits.size(), '0');
    name += digits;
    name += temporary ? temp_suffix : record_suffix;
    return name;
}

void spool::write_file(const std::string& name, std::string_view bytes) {
    const std::string path = opts_.dir + "/" + name;
    const int fd = ::openat(dir_fd_, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno(errno, "spool: creating " + path);
    const auto fail = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlinkat(dir_fd_, name.c_str(), 0);
        throw_errno(err, std::string("spool: ") + what + " " + path);
    };
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("writing");
        }
        done += static_cast<std::size_t>(w);
    }
    if (opts_.sync && ::fdatasync(fd) != 0) fail("syncing");
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlinkat(dir_fd_, name.c_str(), 0);
        throw_errno(err, "spool: closing " + path);
    }
}

void spool::sync_dir() {
    if (opts_.sync && ::fsync(dir_fd_) != 0)
        throw_errno(errno, "spool: syncing directory " + opts_.dir);
}

std::uint64_t spool::append(const batch& b) {
    const std::string payload = encode_batch(b);
    const std::uint64_t rows = b.rows();
    std::lock_guard lock(mu_);
    const std::uint64_t id = next_id_;
    const std::string record = encode_record(id, rows, payload);
    if (record.size() > opts_.max_bytes) {
        dropped_batches_[int(drop_reason::full)].fetch_add(1, std::memory_order_relaxed);
        dropped_rows_[int(drop_reason::full)].fetch_add(rows, std::memory_order_relaxed);
        return 0;
    }
    const std::string temp = file_name(id, true), final_name = file_name(id, false);
    write_file(temp, record);
    if (::renameat(dir_fd_, temp.c_str(), dir_fd_, final_name.c_str()) != 0) {
        const int err = errno;
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        throw_errno(err, "spool: renaming " + opts_.dir + "/" + temp);
    }
    ++next_id_;
    records_[id] = record_info{record.size(), rows};
    bytes_.fetch_add(record.size(), std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
    appended_.fetch_add(1, std::memory_order_relaxed);
    enforce_cap();
    // After the rename, so that a failure here still leaves the record in place (replay of a
    // batch the caller also keeps is harmless: it is idempotent).
    sync_dir();
    return id;
}

void spool::enforce_cap() {
    while (bytes_.load(std::memory_order_relaxed) > opts_.max_bytes && !records_.empty()) {
        const auto it = records_.begin();
        if (it->second.rows) {
            drop(it, drop_reason::full, *it->second.rows);
            continue;
        }
        // A previous run's record: its row count is in its header.
        const std::string name = file_name(it->first, false);
        char head[record_header_size];
        std::size_t got = 0;
        if (const int fd = ::openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
            fd_guard guard{fd};
            try {
                got = read_at(fd, head, sizeof head, 0, opts_.dir + "/" + name);
            } catch (const std::system_error&) {
                got = 0;
            }
        }
        try {
            drop(it, drop_reason::full, parse_record_header({head, got}).rows);
        } catch (const spool_error& e) {
            last_corruption_ = name + ": " + e.what();
            drop(it, drop_reason::corrupt, 0);
        }
    }
}

void spool::drop(std::map<std::uint64_t, record_info>::iterator it, drop_reason r,
                 std::uint64_t rows) {
    // An unlink that fails leaves the file for the next start to find again; forgetting it here
    // keeps front() from retrying it forever.
    ::unlinkat(dir_fd_, file_name(it->first, false).c_str(), 0);
    bytes_.fetch_sub(it->second.bytes, std::memory_order_relaxed);
    batches_.fetch_sub(1, std::memory_order_relaxed);
    dropped_batches_[int(r)].fetch_add(1, std::memory_order_relaxed);
    dropped_rows_[int(r)].fetch_add(rows, std::memory_order_relaxed);
    records_.erase(it);
}

std::optional<spool::entry> spool::front() {
    std::lock_guard lock(mu_);
    while (!records_.empty()) {
        const auto it = records_.begin();
        const std::uint64_t id = it->first;
        const std::string name = file_name(id, false), path = opts_.dir + "/" + name;
        const int fd = ::openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT) throw_errno(errno, "spool: opening " + path);
            last_corruption_ = name + ": spool: the record file vanished";
            drop(it, drop_reason::corrupt, it->second.rows.value_or(0));
            continue;
        }
        fd_guard guard{fd};
        struct stat st {};
        if (::fstat(fd, &st) != 0) throw_errno(errno, "spool: reading " + path);
        const auto size = static_cast<std::uint64_t>(st.st_size);
        // Adjust the accounting if the file is not the size we thought (a previous run's
        // record is indexed by its size at open; nothing else should change it).
        bytes_.fetch_add(size - it->second.bytes, std::memory_order_relaxed);
        it->second.bytes = size;

        char head[record_header_size];
        const std::size_t got = read_at(fd, head, sizeof head, 0, path);
        std::uint64_t rows = 0;
        try {
            const record_header h = parse_record_header({head, got});
            rows = h.rows;
            it->second.rows = rows;
            if (h.id != id)
                throw spool_error("spool: record header: id: " + std::to_string(h.id) +
                                  " does not match the file name");
            if (h.payload_bytes != size - record_header_size)
                throw spool_error("spool: record payload: length: the header says " +
                                  std::to_string(h.payload_bytes) + " bytes, the file holds " +
                                  std::to_string(size - record_header_size));
            std::string record(size, '\0');
            if (read_at(fd, record.data(), size, 0, path) != size)
                throw spool_error("spool: record payload: length: the file shrank while read");
            batch b = decode_batch(record_payload(h, record));
            if (b.rows() != h.rows)
                throw spool_error("spool: record header: rows: " + std::to_string(h.rows) +
                                  ", the payload holds " + std::to_string(b.rows()));
            return entry{id, std::move(b), size};
        } catch (const spool_error& e) {
            last_corruption_ = name + ": " + e.what();
            drop(it, drop_reason::corrupt, rows);
        }
    }
    return std::nullopt;
}

void spool::pop(std::uint64_t id) {
    std::lock_guard lock(mu_);
    const auto it = records_.find(id);
    if (it == records_.end()) return;
    const std::string name = file_name(id, false);
    if (::unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT)
        throw_errno(errno, "spool: removing " + opts_.dir + "/" + name);
    bytes_.fetch_sub(it->second.bytes, std::memory_order_relaxed);
    batches_.fetch_sub(1, std::memory_order_relaxed);
    records_.erase(it);
}

std::string spool::last_corruption() const {
    std::lock_guard lock(mu_);
    return last_corruption_;
}

std::uint64_t spool::dropped_batches(drop_reason r) const {
    return dropped_batches_[int(r)].load(std::memory_order_relaxed);
}

std::uint64_t spool::dropped_rows(drop_reason r) const {
    return dropped_rows_[int(r)].load(std::memory_order_relaxed);
}

namespace {
drop_reason reason_named(std::string_view name) {
    if (name == "full") return drop_reason::full;
    if (name == "corrupt") return drop_reason::corrupt;
    throw std::invalid_argument("spool: drop reason: unknown \"" + std::string(name) +
                                "\" (full or corrupt)");
}
}  // namespace

std::uint64_t spool::dropped_batches(std::string_view reason) const {
    return dropped_batches(reason_named(reason));
}

std::uint64_t spool::dropped_rows(std::string_view reason) const {
    return dropped_rows(reason_named(reason));
}

}  // namespace plugmon::agent::store
