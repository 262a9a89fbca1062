//! Microwasm text: how each operator field prints (the operator names come from the
//! table in [`crate::ops`]). The format is stable; snapshot tests depend on it.

use crate::ops::*;
use core::fmt;
use quickbeam_environ::*;

/// Wraps a field for printing.
pub struct Field<'a, T: ?Sized>(pub &'a T);

macro_rules! display_via {
    ($($t:ty => |$v:ident, $f:ident| $body:expr;)*) => {$(
        impl fmt::Display for Field<'_, $t> {
            fn fmt(&self, $f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $v = self.0;
                $body
            }
        }
    )*};
}

display_via! {
    u32 => |v, f| write!(f, "{v}");
    ValType => |v, f| write!(f, "{v}");
    RefType => |v, f| f.write_str(match v { RefType::FuncRef => "func", RefType::ExternRef => "extern" });
    FuncType => |v, f| write!(f, "{v}");
    Label => |v, f| write!(f, "L{}", v.0);
    LabelKind => |v, f| f.write_str(match v { LabelKind::Block => "block", LabelKind::Loop => "loop", LabelKind::Else => "else" });
    ConstIdx => |v, f| write!(f, "#{}", v.0);
    FuncSlot => |v, f| write!(f, "func{}", v.0);
    GlobalSlot => |v, f| write!(f, "global{}", v.0);
    TableSlot => |v, f| write!(f, "table{}", v.0);
    TypeSlot => |v, f| write!(f, "type{}", v.0);
    MemorySlot => |v, f| write!(f, "mem{}", v.0);
    DataSlot => |v, f| write!(f, "data{}", v.0);
    ElemSlot => |v, f| write!(f, "elem{}", v.0);
    ConstValue => |v, f| match v {
        ConstValue::I32(x) => write!(f, "i32:{x}"),
        ConstValue::I64(x) => write!(f, "i64:{x}"),
        ConstValue::F32(x) => write!(f, "f32:{}", f32::from_bits(*x)),
        ConstValue::F64(x) => write!(f, "f64:{}", f64::from_bits(*x)),
    };
    MemArg => |v, f| write!(f, "{} offset={} #{} align={}", Field(&v.memory), v.offset, v.k.0, 1u32 << v.align);
    BrTargets => |v, f| {
        for (i, l) in v.0.iter().enumerate() {
            if i > 0 { f.write_str(" ")?; }
            write!(f, "L{}", l.0)?;
        }
        Ok(())
    };
}

/// Prints a sequence of operators, one per line, labels flush left and others indented.
pub fn print_ops(ops: &[Op]) -> String {
    use fmt::Write;
    let mut s = String::new();
    for op in ops {
        match op {
            Op::Bind { label } => writeln!(s, "L{}:", label.0),
            _ => writeln!(s, "  {op}"),
        }
        .expect("writing to a String cannot fail");
    }
    s
}
