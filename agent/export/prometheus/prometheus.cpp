// Frames /metrics: renders every registered source in order into one body, into pieces for a
// sink, or into a gzip stream; the components' own families come from their sources.
#include "export/prometheus/prometheus.hpp"

#include "export/prometheus/series_metrics.hpp"
#include "ingest/ingest_metrics.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace plugmon::agent {

namespace {

/// Room, in a body held whole, for the sources without a size hint (the small families: the
/// drain's, the intake's, the store's own, the writer's, about 8 KiB together), with room to
/// spare: too little would cost a copy of the whole body to grow it.
constexpr std::size_t unhinted_bytes = 16 * 1024;

/// Extra room past a piece for the lines written before the next flush (one series' lines).
constexpr std::size_t piece_slack_bytes = 64 * 1024;

/// Renders every source into `t`, then hands on what is left. A body held whole is reserved
/// first from the sources' hints; a source that knows its size only while rendering (the
/// series) reserves on top of that.
void render_all(const metrics_registry& sources, metrics_text& t) {
    if (t.sink() == nullptr) {
        std::size_t bytes = unhinted_bytes;
        for (const auto& s : sources.sources()) bytes += s->size_hint();
        t.out.reserve(t.out.size() + bytes);
    } else {
        t.out.reserve(t.chunk() + piece_slack_bytes);
    }
    for (const auto& s : sources.sources()) {
        s->render(t);
        t.flush_if_full();
    }
    t.flush();
}

}  // namespace

void add_core_metrics(metrics_registry& r, const series_registry& store, const drain& d,
                      const intake* in) {
    r.add(make_series_metrics_source(store));
    r.add(make_process_metrics_source(d));
    r.add([&d](std::string& out) { d.render_metrics(out); });
    if (in != nullptr) r.add([in](std::string& out) { in->render_metrics(out); });
    r.add(make_series_store_metrics_source(store));
}

metrics_registry core_metrics(const series_registry& store, const drain& d, const intake* in) {
    metrics_registry r;
    add_core_metrics(r, store, d, in);
    return r;
}

std::string render_metrics(const metrics_registry& sources) {
    std::string out;
    metrics_text t(out);
    render_all(sources, t);
    return out;
}

void render_metrics(const metrics_registry& sources, const metrics_sink& sink,
                    std::size_t chunk_bytes) {
    std::string out;
    metrics_text t(out, &sink, std::max<std::size_t>(chunk_bytes, 4096));
    render_all(sources, t);
}

std::string render_metrics_gzip(const metrics_registry& sources) {
    z_stream z{};
    // windowBits 15 + 16: a gzip header and trailer, as Content-Encoding: gzip wants
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out;
    const auto pump = [&](std::string_view piece, int mode) {
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
        z.avail_in = static_cast<uInt>(piece.size());
        do {
            const std::size_t before = out.size();
            out.resize(before + (256u << 10));
            z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
            z.avail_out = 256u << 10;
            const int rc = deflate(&z, mode);
            out.resize(out.size() - z.avail_out);
            if (rc == Z_STREAM_ERROR) throw std::runtime_error("deflate failed");
            if (mode == Z_FINISH && rc == Z_STREAM_END) return;
        } while (z.avail_in != 0 || z.avail_out == 0 || mode == Z_FINISH);
    };
    try {
        render_metrics(
            sources, [&](std::string_view piece) { pump(piece, Z_NO_FLUSH); }, 1u << 20);
        pump({}, Z_FINISH);
    } catch (...) {
        deflateEnd(&z);
        throw;
    }
    deflateEnd(&z);
    return out;
}

}  // namespace plugmon::agent
