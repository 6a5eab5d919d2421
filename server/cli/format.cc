#include "server/cli/format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace vicreg::cli {

std::string TerminalSafe(const std::string& s, bool keep_newlines) {
  std::string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    // C1 controls as UTF-8 (U+0080..U+009F: C2 80..C2 9F); CSI is also U+009B.
    const bool c1 = c == 0xC2 && i + 1 < n && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(s[i + 1]) <= 0x9F;
    if (c == 0x1B || c1) {
      const unsigned char kind = c1 ? static_cast<unsigned char>(s[i + 1]) - 0x40 : (i + 1 < n ? s[i + 1] : 0);
      i += 1;  // past ESC (or the C2 of a C1 pair: the loop's ++i skips its second byte)
      if (kind == '[') {  // CSI: parameters and intermediates, then one final byte 0x40..0x7E
        while (i + 1 < n && !(s[i + 1] >= 0x40 && s[i + 1] <= 0x7E)) ++i;
        if (i + 1 < n) ++i;
      } else if (kind == ']' || kind == 'P' || kind == '_' || kind == '^' || kind == 'X') {
        // OSC / DCS / APC / PM / SOS: up to BEL or ST (ESC \)
        while (i + 1 < n && s[i + 1] != '\a' && !(s[i + 1] == 0x1B && i + 2 < n && s[i + 2] == '\\')) ++i;
        if (i + 1 < n) i += s[i + 1] == '\a' ? 1 : 2;
      }
      continue;
    }
    if (c == '\n') {
      out += keep_newlines ? '\n' : ' ';
    } else if (c == '\t') {
      out += c;
    } else if (c < 0x20 || c == 0x7F) {
      out += '?';
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string RenderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows_in) {
  std::vector<std::vector<std::string>> rows = rows_in;
  for (auto& r : rows) {
    for (auto& cell : r) cell = TerminalSafe(cell, /*keep_newlines=*/false);
  }
  std::vector<size_t> w(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  };
  widen(header);
  for (const auto& r : rows) widen(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    std::string l;
    for (size_t i = 0; i < r.size(); ++i) {
      l += r[i];
      if (i + 1 < r.size()) l += std::string(w[i] - r[i].size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string Duration(double s) {
  if (!(s > 0) || !std::isfinite(s)) return "-";
  long long t = static_cast<long long>(std::llround(s));
  char buf[64];
  if (t >= 86400)
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh%02lldm", t / 86400, (t % 86400) / 3600, (t % 3600) / 60);
  else if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", t / 3600, (t % 3600) / 60, t % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%llds", t);
  return buf;
}

std::string Timestamp(double unix_s) {
  if (unix_s <= 0) return "-";
  time_t t = static_cast<time_t>(unix_s);
  tm local;
  localtime_r(&t, &local);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

double TimeOf(const google::protobuf::Message& m, const std::string& time_field, const std::string& legacy_field) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  const google::protobuf::Reflection* r = m.GetReflection();
  const google::protobuf::FieldDescriptor* t = d->FindFieldByName(time_field);
  if (t != nullptr && t->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE && r->HasField(m, t)) {
    const google::protobuf::Message& ts = r->GetMessage(m, t);
    const google::protobuf::Descriptor* td = ts.GetDescriptor();
    const google::protobuf::Reflection* tr = ts.GetReflection();
    const auto* sec = td->FindFieldByName("seconds");
    const auto* nanos = td->FindFieldByName("nanos");
    if (sec != nullptr && nanos != nullptr) {
      return static_cast<double>(tr->GetInt64(ts, sec)) + static_cast<double>(tr->GetInt32(ts, nanos)) * 1e-9;
    }
  }
  const google::protobuf::FieldDescriptor* l = d->FindFieldByName(legacy_field);
  if (l != nullptr && l->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE) return r->GetDouble(m, l);
  return 0;
}

std::string StateName(v1::JobState s) {
  const std::string& n = v1::JobState_Name(s);
  return n.empty() ? "UNKNOWN" : n;
}

std::string EvalStateName(v1::EvalTask::State s) {
  const std::string& n = v1::EvalTask::State_Name(s);
  return n.empty() ? "UNKNOWN" : n;
}

std::string ClusterWait(const v1::Job& j, double now_unix) {
  if (j.attempt_phase() != v1::ATTEMPT_QUEUED) return "";
  std::string s = j.queue_state().empty() ? "QUEUED" : j.queue_state();
  if (!j.queue_reason().empty()) s += " (" + j.queue_reason() + ")";
  const double since = TimeOf(j, "queued_since_time", "queued_since_unix");
  if (since > 0) s += " for " + Duration(now_unix - since);
  return s;
}

std::string ProgressLine(const v1::Progress& p) {
  if (p.step() == 0 && p.total_steps() == 0 && p.epoch() == 0) return "";
  std::string out = "step " + std::to_string(p.step());
  char buf[128];
  if (p.total_steps() > 0) {
    std::snprintf(buf, sizeof(buf), "/%lld (%.0f%%)", static_cast<long long>(p.total_steps()),
                  100.0 * static_cast<double>(p.step()) / static_cast<double>(p.total_steps()));
    out += buf;
  }
  out += ", epoch " + std::to_string(p.epoch());
  if (p.num_epochs() > 0) out += "/" + std::to_string(p.num_epochs());
  std::snprintf(buf, sizeof(buf), ", loss %.4f", p.loss());
  out += buf;
  if (p.steps_per_s() > 0) {
    std::snprintf(buf, sizeof(buf), ", %.2f steps/s", p.steps_per_s());
    out += buf;
  }
  if (p.images_per_s() > 0) {
    std::snprintf(buf, sizeof(buf), ", %.0f img/s", p.images_per_s());
    out += buf;
  }
  if (p.eta_seconds() > 0) out += ", ETA " + Duration(p.eta_seconds());
  return out;
}

std::string ProgressBar(const v1::Progress& p, int width) {
  double frac = p.total_steps() > 0 ? std::clamp(static_cast<double>(p.step()) / p.total_steps(), 0.0, 1.0) : 0.0;
  int inner = std::max(4, width - 2);
  int filled = static_cast<int>(std::floor(frac * inner));
  char pct[16];
  std::snprintf(pct, sizeof(pct), " %3.0f%%", 100 * frac);
  return "[" + std::string(filled, '#') + std::string(inner - filled, '.') + "]" + pct;
}

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace vicreg::cli
