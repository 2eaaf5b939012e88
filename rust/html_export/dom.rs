//! A small tree of one message's elements, built from tokens and thrown away after mapping.
//!
//! Design: a page may be huge, a message is small. The page is tokenized as a stream and only
//! the element being read (one message, or the page header) becomes a tree, so memory stays
//! flat per page while the mapping code can ask simple questions ("the `div.text` child of the
//! body") instead of running a state machine per field. The builder never recurses, caps depth
//! and node count, and records the first sign of damage (an end tag closing the wrong element,
//! a stray end tag, text that is not UTF-8) for the caller to quarantine the message with.

/// Elements HTML never closes.
const VOID: [&str; 8] = ["br", "img", "hr", "meta", "link", "input", "wbr", "source"];
/// A message with more nodes than this is not one Telegram Desktop wrote.
const MAX_NODES: usize = 200_000;

#[derive(Debug)]
pub(crate) enum Node {
    Element {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<usize>,
    },
    Text(String),
}

#[derive(Debug)]
pub(crate) struct Dom {
    pub nodes: Vec<Node>,
}

pub(crate) const ROOT: usize = 0;

impl Dom {
    pub fn name(&self, id: usize) -> &str {
        match &self.nodes[id] {
            Node::Element { name, .. } => name,
            Node::Text(_) => "",
        }
    }

    pub fn attr(&self, id: usize, key: &str) -> Option<&str> {
        match &self.nodes[id] {
            Node::Element { attrs, .. } => attrs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            Node::Text(_) => None,
        }
    }

    pub fn has_class(&self, id: usize, class: &str) -> bool {
        self.attr(id, "class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|w| w == class))
    }

    pub fn children(&self, id: usize) -> &[usize] {
        match &self.nodes[id] {
            Node::Element { children, .. } => children,
            Node::Text(_) => &[],
        }
    }

    /// The first direct child element carrying every class in `classes`.
    pub fn child(&self, id: usize, classes: &[&str]) -> Option<usize> {
        self.children(id)
            .iter()
            .copied()
            .find(|&c| !classes.is_empty() && classes.iter().all(|k| self.has_class(c, k)))
    }

    /// The first descendant (document order) for which `pred` holds.
    pub fn find(&self, id: usize, pred: impl Fn(usize) -> bool) -> Option<usize> {
        let mut stack: Vec<usize> = self.children(id).iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            if pred(n) {
                return Some(n);
            }
            stack.extend(self.children(n).iter().rev());
        }
        None
    }

    /// The first descendant with every class in `classes`.
    pub fn find_class(&self, id: usize, classes: &[&str]) -> Option<usize> {
        self.find(id, |n| classes.iter().all(|k| self.has_class(n, k)))
    }

    /// Every descendant text, `<br>` as a newline, `<img alt>` as its alt text.
    pub fn text(&self, id: usize) -> String {
        let mut out = String::new();
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            match &self.nodes[n] {
                Node::Text(s) => out.push_str(s),
                Node::Element { name, children, .. } => {
                    match name.as_str() {
                        "br" => out.push('\n'),
                        "img" => out.push_str(self.attr(n, "alt").unwrap_or("")),
                        _ => {}
                    }
                    stack.extend(children.iter().rev());
                }
            }
        }
        out
    }

    /// [`Dom::text`] with the layout whitespace Desktop puts around block contents removed.
    pub fn trimmed_text(&self, id: usize) -> String {
        self.text(id).trim().to_owned()
    }
}

/// Builds a [`Dom`] from start tags, end tags and text, in page order.
pub(crate) struct Builder {
    pub dom: Dom,
    /// Open elements (node ids), the root first.
    stack: Vec<usize>,
    /// Open elements past `max_depth`, counted only.
    hidden: usize,
    max_depth: usize,
    /// Stop adding nodes (the message is already known to be quarantined).
    pub frozen: bool,
    /// The first damage seen.
    pub damage: Option<String>,
}

impl Builder {
    pub fn new(name: String, attrs: Vec<(String, String)>, max_depth: usize) -> Self {
        Builder {
            dom: Dom {
                nodes: vec![Node::Element {
                    name,
                    attrs,
                    children: Vec::new(),
                }],
            },
            stack: vec![ROOT],
            hidden: 0,
            max_depth,
            frozen: false,
            damage: None,
        }
    }

    /// The root element was closed.
    pub fn done(&self) -> bool {
        self.stack.is_empty()
    }

    pub fn damaged(&mut self, why: impl FnOnce() -> String) {
        if self.damage.is_none() {
            self.damage = Some(why());
        }
    }

    fn add(&mut self, node: Node) -> Option<usize> {
        if self.frozen || self.dom.nodes.len() >= MAX_NODES {
            if !self.frozen {
                self.damaged(|| format!("more than {MAX_NODES} HTML nodes in one message"));
                self.frozen = true;
            }
            return None;
        }
        let id = self.dom.nodes.len();
        self.dom.nodes.push(node);
        let parent = *self.stack.last()?;
        if let Node::Element { children, .. } = &mut self.dom.nodes[parent] {
            children.push(id);
        }
        Some(id)
    }

    pub fn start(&mut self, name: String, attrs: Vec<(String, String)>, self_closing: bool) {
        let void = self_closing || VOID.contains(&name.as_str());
        if self.hidden > 0 || (!void && self.stack.len() >= self.max_depth) {
            if !void {
                self.hidden += 1;
                let max = self.max_depth;
                self.damaged(|| format!("HTML nested deeper than {max} elements"));
            }
            return;
        }
        let element = Node::Element {
            name,
            attrs,
            children: Vec::new(),
        };
        match self.add(element) {
            Some(id) if !void => self.stack.push(id),
            None if !void => self.hidden += 1,
            _ => {}
        }
    }

    pub fn end(&mut self, name: &str) {
        if self.hidden > 0 {
            self.hidden -= 1;
            return;
        }
        if VOID.contains(&name) {
            return;
        }
        let Some(depth) = self.stack.iter().rposition(|&n| self.dom.name(n) == name) else {
            self.damaged(|| format!("a stray </{name}>"));
            return;
        };
        if depth + 1 != self.stack.len() {
            let open = self.dom.name(self.stack[self.stack.len() - 1]).to_owned();
            self.damaged(|| format!("</{name}> closes an unclosed <{open}>"));
        }
        self.stack.truncate(depth);
    }

    pub fn text(&mut self, s: &str) {
        if s.is_empty() || self.hidden > 0 || self.frozen {
            return;
        }
        if let Some(&parent) = self.stack.last() {
            if let Some(&last) = self.dom.children(parent).last() {
                if let Node::Text(t) = &mut self.dom.nodes[last] {
                    t.push_str(s);
                    return;
                }
            }
        }
        self.add(Node::Text(s.to_owned()));
    }
}
