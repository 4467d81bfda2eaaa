// A registered producer process: its identity, its mapped segment and its counts.
#include "ingest/producer.hpp"

#include "ingest/process_limits.hpp"

#include <cstdio>

#include <unistd.h>

namespace plugmon::agent {

const char* to_string(producer_state s) {
    switch (s) {
        case producer_state::attached:
            return "attached";
        case producer_state::quarantined:
            return "quarantined";
        case producer_state::finished:
            return "finished";
    }
    return "unknown";
}

producer::producer(std::uint64_t id, int pid, unsigned uid, int memfd,
                   std::unique_ptr<mapped_segment> seg)
    : id_(id), pid_(pid), uid_(uid), memfd_(memfd), seg_(std::move(seg)),
      attached_at_(std::chrono::system_clock::now()), limits_(read_process_limits(pid)) {
    counts_.consumed_at_attach = seg_ ? seg_->consumed_total() : 0;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
    if (std::FILE* f = std::fopen(path, "re")) {
        char buf[64] = {};
        if (std::fgets(buf, sizeof buf, f) != nullptr) name_ = buf;
        std::fclose(f);
        while (!name_.empty() && (name_.back() == '\n' || name_.back() == ' ')) name_.pop_back();
        for (char& c : name_)
            if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') c = '_';
    }
}

producer::~producer() {
    seg_.reset();
    if (memfd_ >= 0) ::close(memfd_);
}

}  // namespace plugmon::agent
