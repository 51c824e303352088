//! Activations: GELU from its erf and tanh decompositions, in the operand
//! orders exporters write (commutativity, from the canonicalise stage,
//! covers the mirrored orders; these rows cover the three ways to
//! parenthesise `½ · x · (1 + f(x))`), and SiLU from `x · sigmoid(x)`.
//! SwiGLU (`silu(a) · b`) needs no op of its own: the epilogue stage and the
//! elementwise fusion pass put the product into the kernel that makes `a`.

use super::{Rule, rw};

/// The activation rules (fusion stage). Constants: √2 = 1.4142135,
/// 1/√2 = 0.70710677, √(2/π) = 0.7978846, GELU's cubic coefficient 0.044715.
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: (x · (1 + erf(x/√2))) · ½ = gelu(x)          (torch.nn.GELU export, GPT-2)
        rw("gelu-erf-a", "(mul (mul ?x (add (erf (div ?x ?s)) ?one)) ?half)", "(gelu ?x)", "s=1.4142135 one=1 half=0.5", "x:f32[2,8]"),
        // law: (x · ½) · (1 + erf(x/√2)) = gelu(x)          (HF `x * 0.5 * (1.0 + erf(x / sqrt2))`)
        rw("gelu-erf-b", "(mul (mul ?x ?half) (add (erf (div ?x ?s)) ?one))", "(gelu ?x)", "s=1.4142135 one=1 half=0.5", "x:f32[2,8]"),
        // law: x · ((1 + erf(x/√2)) · ½) = gelu(x)
        rw("gelu-erf-c", "(mul ?x (mul (add (erf (div ?x ?s)) ?one) ?half))", "(gelu ?x)", "s=1.4142135 one=1 half=0.5", "x:f32[2,8]"),
        // law: (x · (1 + erf(x · 1/√2))) · ½ = gelu(x)
        rw("gelu-erf-a-rsqrt2", "(mul (mul ?x (add (erf (mul ?x ?r)) ?one)) ?half)", "(gelu ?x)", "r=0.70710677 one=1 half=0.5", "x:f32[2,8]"),
        // law: (x · ½) · (1 + erf(x · 1/√2)) = gelu(x)
        rw("gelu-erf-b-rsqrt2", "(mul (mul ?x ?half) (add (erf (mul ?x ?r)) ?one))", "(gelu ?x)", "r=0.70710677 one=1 half=0.5", "x:f32[2,8]"),
        // law: x · ((1 + erf(x · 1/√2)) · ½) = gelu(x)
        rw("gelu-erf-c-rsqrt2", "(mul ?x (mul (add (erf (mul ?x ?r)) ?one) ?half))", "(gelu ?x)", "r=0.70710677 one=1 half=0.5", "x:f32[2,8]"),
        // law: (x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))) · ½ = gelu_tanh(x)
        rw("gelu-tanh-a", "(mul (mul ?x (add (tanh (mul (add ?x (mul (pow ?x ?three) ?c)) ?k)) ?one)) ?half)", "(gelu_tanh ?x)", "three=3 c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: (x · ½) · (1 + tanh(√(2/π) · (x + 0.044715 · x³))) = gelu_tanh(x)   (torch approximate='tanh', HF gelu_new)
        rw("gelu-tanh-b", "(mul (mul ?x ?half) (add (tanh (mul (add ?x (mul (pow ?x ?three) ?c)) ?k)) ?one))", "(gelu_tanh ?x)", "three=3 c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: x · ((1 + tanh(√(2/π) · (x + 0.044715 · x³))) · ½) = gelu_tanh(x)
        rw("gelu-tanh-c", "(mul ?x (mul (add (tanh (mul (add ?x (mul (pow ?x ?three) ?c)) ?k)) ?one) ?half))", "(gelu_tanh ?x)", "three=3 c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: as gelu-tanh-a with x³ written x · x · x
        rw("gelu-tanh-a-cube", "(mul (mul ?x (add (tanh (mul (add ?x (mul (mul (mul ?x ?x) ?x) ?c)) ?k)) ?one)) ?half)", "(gelu_tanh ?x)", "c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: as gelu-tanh-b with x³ written x · x · x
        rw("gelu-tanh-b-cube", "(mul (mul ?x ?half) (add (tanh (mul (add ?x (mul (mul (mul ?x ?x) ?x) ?c)) ?k)) ?one))", "(gelu_tanh ?x)", "c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: as gelu-tanh-c with x³ written x · x · x
        rw("gelu-tanh-c-cube", "(mul ?x (mul (add (tanh (mul (add ?x (mul (mul (mul ?x ?x) ?x) ?c)) ?k)) ?one) ?half))", "(gelu_tanh ?x)", "c=0.044715 k=0.7978846 one=1 half=0.5", "x:f32[2,8]"),
        // law: x · sigmoid(x) = silu(x)                      (torch.nn.SiLU / F.silu export, Llama MLP)
        rw("silu-a", "(mul ?x (sigmoid ?x))", "(silu ?x)", "", "x:f32[3,17]"),
        // law: sigmoid(x) · x = silu(x)
        rw("silu-b", "(mul (sigmoid ?x) ?x)", "(silu ?x)", "", "x:f32[3,17]"),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&super::rules());
    }
}
