// Defines the per-ISA entry points of attr_cpu.h in an attr_isa_*.cpp file,
// forwarding to the kernels compiled there in namespace `ns`.
#pragma once

#define TA_ATTR_DEFINE_ENTRY_POINTS(suffix, ns)                                                   \
  namespace trustattr::cpu {                                                                      \
  void project_factored_##suffix(const FactoredArgs& a) { ns::project_factored(a); }             \
  void project_outer_##suffix(const OuterArgs& a) { ns::project_outer(a); }                      \
  void score_##suffix(const ScoreArgs& a, void* out) { ns::score(a, out); }                      \
  void topk_score_##suffix(const TopkArgs& a) { ns::topk_score(a); }                             \
  void datainf_##suffix(const DatainfArgs& a) { ns::datainf(a); }                                \
  }
