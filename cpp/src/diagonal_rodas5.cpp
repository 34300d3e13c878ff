// Explicit instances of the diagonal family's flow integrators (see diagonal_flows.hpp).
#include "diagonal_flows.hpp"

namespace implicitbias {
IMPLICITBIAS_INSTANTIATE_FLOW(run_rodas5, DiagonalBlockModel)
IMPLICITBIAS_INSTANTIATE_FLOW(run_rodas5, DualDiagonalModel)
}  // namespace implicitbias
