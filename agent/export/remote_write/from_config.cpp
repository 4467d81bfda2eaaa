// Maps a [[remote_write]] table and the agent's settings onto sink_options.
#include "export/remote_write/from_config.hpp"

namespace plugmon::agent::remote_write {

std::shared_ptr<sink> make_sink(const config& c, const remote_write_spec& r) {
    sink_options o;
    o.name = r.name;
    o.url = r.url;
    o.tls_ca_file = r.tls_ca_file;
    o.headers = r.headers;
    o.timeout = r.timeout;
    o.max_samples_per_send = r.max_samples_per_send;
    o.spool_dir = r.spool_dir;
    o.spool_max_bytes = r.spool_max_bytes;
    o.native_histograms = r.native_histograms;
    o.host = c.host;
    for (const auto& [name, value] : r.external_labels)
        o.series.external_labels.push_back({name, value});
    o.series.query_buckets = c.query_buckets;
    o.series.stale_after_windows = c.series_expiry_windows;
    return std::make_shared<sink>(std::move(o));
}

}  // namespace plugmon::agent::remote_write
