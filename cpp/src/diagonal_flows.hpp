// The flow integrators of the diagonal family, instantiated once each in
// their own translation unit (cpp/src/diagonal_*.cpp) so that no unit of a
// core takes a minute to compile and the units of one core build in parallel.
//
// Include this header BEFORE <implicitbias/diagonal_batch.hpp>: the
// `extern template` declarations below keep the batch unit
// (cpp/bindings/diagonal.cpp) from instantiating the integrators itself; it
// calls the instances compiled in cpp/src/.  Every unit of one core is
// compiled with that core's -march flags and linked into that core alone, so
// no code of one instruction-set variant reaches another variant's core.
//
// An integrator that a new solver or model needs: add it to the list below
// (X(function, Model)) and to the unit that instantiates it; a missing
// instance shows up as an undefined symbol when the core is imported
// (tests/test_native.py).
#pragma once

#include <implicitbias/bdf.hpp>
#include <implicitbias/diagonal.hpp>
#include <implicitbias/dual_flow.hpp>
#include <implicitbias/flow.hpp>
#include <implicitbias/rodas.hpp>

#include <vector>

// X(integrator, Model) for every integrator instance the diagonal batch calls.
#define IMPLICITBIAS_DIAGONAL_FLOWS(X)      \
  X(run_rosw, DiagonalBlockModel)           \
  X(run_dopri5, DiagonalBlockModel)         \
  X(run_rodas5, DiagonalBlockModel)         \
  X(run_bdf, DiagonalBlockModel)            \
  X(run_rodas5, DualDiagonalModel)          \
  X(run_bdf, DualDiagonalModel)

// The explicit instantiation (definition) of one integrator instance.
#define IMPLICITBIAS_INSTANTIATE_FLOW(integrator, Model)                                     \
  template void integrator<Model>(Model&, const Mat&, const AdaptiveOptions&, std::vector<RunRecord>&);
#define IMPLICITBIAS_EXTERN_FLOW(integrator, Model) extern IMPLICITBIAS_INSTANTIATE_FLOW(integrator, Model)

namespace implicitbias {
IMPLICITBIAS_DIAGONAL_FLOWS(IMPLICITBIAS_EXTERN_FLOW)
}  // namespace implicitbias
