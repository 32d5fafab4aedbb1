#include <strata/capture/instrument.h>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <strata/capture/hook_point.h>

#include <unordered_set>

namespace strata {

namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

const c10::Symbol& hook_symbol() {
  static const c10::Symbol s = c10::Symbol::fromQualString("strata::hook");
  return s;
}

bool is_module_value(const Value* v) {
  if (auto cls = v->type()->cast<c10::ClassType>()) return cls->is_module();
  if (auto iface = v->type()->cast<c10::InterfaceType>()) return iface->is_module();
  return false;
}

bool holds_tensor(const c10::TypePtr& t) {
  if (t->kind() == c10::TypeKind::TensorType) return true;
  if (auto tup = t->cast<c10::TupleType>()) {
    for (const auto& e : tup->elements())
      if (holds_tensor(e)) return true;
  }
  return false;
}

// Passes `v` through the hook operator at the graph's current insertion point; tuples are
// unpacked, each tensor element hooked with its flattened index, and rebuilt.
Value* wrap(Graph& g, Value* v, Value* module, HookKind kind, int64_t& next_index, bool single,
            InstrumentStats& stats) {
  const auto& type = v->type();
  if (type->kind() == c10::TypeKind::TensorType) {
    const int64_t index = single ? -1 : next_index++;
    Value* out = g.insert(hook_symbol(), {v, module, index, static_cast<int64_t>(kind)});
    out->setType(type);
    (kind == HookKind::Output ? stats.output_hooks : stats.input_hooks)++;
    return out;
  }
  auto tup = type->cast<c10::TupleType>();
  if (!tup || !holds_tensor(type)) return v;
  Node* unpack = g.insertNode(g.createTupleUnpack(v));
  std::vector<Value*> elems;
  for (Value* e : unpack->outputs()) elems.push_back(wrap(g, e, module, kind, next_index, false, stats));
  // Only named tuples may pass their type; plain ones take it from the elements.
  Node* pack = g.insertNode(g.createTuple(elems, tup->schema() ? tup : nullptr));
  return pack->output();
}

// "forward", and the "forward1", "forward2", ... that torch.jit.trace creates for a module it
// traced more than once.
bool is_forward_name(const std::string& name) {
  if (name.rfind("forward", 0) != 0) return false;
  for (size_t i = 7; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

void collect_calls(Block* b, std::vector<Node*>& calls, bool& already) {
  for (Node* n : b->nodes()) {
    if (n->kind() == hook_symbol()) already = true;
    if (n->kind() == c10::prim::CallMethod && is_forward_name(n->s(c10::attr::name)) &&
        is_module_value(n->inputs()[0])) {
      calls.push_back(n);
    }
    for (Block* sub : n->blocks()) collect_calls(sub, calls, already);
  }
}

void instrument_graph(Graph& g, InstrumentStats& stats) {
  std::vector<Node*> calls;
  bool already = false;
  collect_calls(g.block(), calls, already);
  if (already) return;
  for (Node* call : calls) {
    Value* module = call->inputs()[0];
    ++stats.call_sites;
    {  // inputs, hooked just before the call; only this call sees the hooked values
      torch::jit::WithInsertPoint guard(call);
      int64_t next = 0;
      for (size_t i = 1; i < call->inputs().size(); ++i) {
        Value* in = call->inputs()[i];
        if (!holds_tensor(in->type())) continue;
        Value* hooked = wrap(g, in, module, HookKind::Input, next, false, stats);
        call->replaceInput(i, hooked);
      }
    }
    if (call->outputs().size() != 1 || !holds_tensor(call->output()->type())) continue;
    Value* out = call->output();
    const auto uses = out->uses();  // the original consumers, before hook nodes are added
    torch::jit::WithInsertPoint guard(call->next());
    int64_t next = 0;
    const bool single = out->type()->kind() == c10::TypeKind::TensorType;
    Value* hooked = wrap(g, out, module, HookKind::Output, next, single, stats);
    for (const auto& use : uses) use.user->replaceInput(use.offset, hooked);
  }
}

void visit_types(const torch::jit::Module& m, std::unordered_set<const c10::ClassType*>& seen,
                 InstrumentStats& stats) {
  const auto& type = m.type();
  if (seen.insert(type.get()).second) {
    for (torch::jit::Function* fn : type->methods()) {
      if (!fn->isGraphFunction()) continue;
      instrument_graph(*torch::jit::toGraphFunction(*fn).graph(), stats);
      ++stats.graphs;
    }
  }
  for (const auto& child : m.children()) visit_types(child, seen, stats);
}

}  // namespace

InstrumentStats instrument(torch::jit::Module& module) {
  InstrumentStats stats;
  std::unordered_set<const c10::ClassType*> seen;
  visit_types(module, seen, stats);
  return stats;
}

}  // namespace strata
