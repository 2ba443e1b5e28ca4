"""Marker lexicon for R1-style reasoning, kept as data.

Each table holds regular-expression fragments (case-insensitive, matched at the
start of a step or of its opening window unless the table says "anywhere").
Sources: trace-trees research note §3 (Thought Anchors, Thoughtology, SEAL,
LCoT2Tree, ReasoningLens, oat-zero). Edit the tables, not the code, to adapt to
another model family.
"""

from __future__ import annotations

# Characters of look-ahead after a candidate boundary before it is decided.
LOOKAHEAD = 40
# A boundary is honoured only once the current step has this many non-space chars.
MIN_STEP_NONSPACE = 25
# Past this many characters a step may also end at any sentence end.
SOFT_MAX_STEP_CHARS = 1000
# A display-math region that is still open after this many chars is treated as
# unbalanced and ignored (one stray "$$" must not swallow the whole trace).
MAX_MATH_REGION_CHARS = 2000
# Characters of a step's opening used by the rule classifier.
OPENING_CHARS = 100
# Steps (by ordinal) in which "setup" may be assigned.
SETUP_MAX_ORDINAL = 5
# Maximum depth of episodes (top-level episode = depth 1).
EPISODE_DEPTH_CAP = 4
# Characters of a title.
TITLE_CHARS = 72

# Strong start markers, per kind. Order within the table does not matter; the
# precedence between kinds is PRECEDENCE below.
START_MARKERS: dict[str, tuple[str, ...]] = {
    "final": (
        r"\**\s*final answer",
        r"(?:so|thus|therefore|hence)?,?\s*(?:the\s+)?final answer",
        r"(?:so|thus|therefore|hence),?\s+(?:the\s+)?(?:answer|result) (?:is|should be|would be)",
        r"the answer (?:is|should be)",
        r"(?:so|thus|therefore),? (?:the )?total (?:is|comes to)\b.*\\boxed",
        r"\\boxed\{",
    ),
    "backtrack": (
        r"wait,?\s+no\b",
        r"(?:but\s+)?(?:wait|hmm|hold on),?\s+(?:that|this)(?:'s| is| was)?\s+"
        r"(?:not|wrong|incorrect|can't|cannot|doesn't|isn't)",
        r"(?:wait|hmm|oh),?\s+(?:I|I've)\s+(?:made|think I made)\s+(?:a\s+)?(?:mistake|error)",
        r"(?:wait|hmm),?\s+(?:I|we)\s+(?:think I\s+)?(?:messed|miscalculated|miscounted)",
        r"no,\s",
        r"oops",
        r"actually,?\s+(?:that|this)(?:'s| is| was)\s+(?:wrong|incorrect|not)",
        r"that(?:'s| is)\s+(?:wrong|incorrect|not right)",
        r"that can(?:'t|not) be(?: right)?",
        r"I made (?:a|an) (?:mistake|error)",
    ),
    "alternative": (
        r"alternatively",
        r"(?:or|but),?\s+alternatively",
        r"another (?:way|approach|method|idea|thought|strategy|option)",
        r"instead,",
        r"let(?: me|'s|us) (?:try|think of|consider|use) (?:a |an )?(?:different|another|other)",
        r"let(?: me|'s) think (?:differently|of another)",
        r"or maybe",
        r"maybe (?:there's|there is) (?:a |an )?(?:different|another|better|simpler)",
        r"(?:a )?(?:different|simpler|better) (?:way|approach|method)",
    ),
    "verify": (
        r"(?:but |so |now |and |okay,? |wait,? |but wait,? )?"
        r"let(?: me|'s|us) (?:just |quickly |also |now )?"
        r"(?:check|verify|double[- ]?check|confirm|recheck|re-?check|re-?verify|cross[- ]?check|"
        r"make sure|validate|test|plug|substitute|sanity)",
        r"(?:but |and )?(?:just )?to (?:verify|check|confirm|double[- ]?check|make sure|be sure|"
        r"be thorough|be safe)",
        r"double[- ]?check",
        r"verif(?:y|ying|ication)",
        r"check(?:ing)?\b",
        r"plug(?:ging)? (?:it |this |these |that |them |x |the values? )?(?:back|in)",
        r"substitut(?:e|ing) (?:back|it|x|the)",
        r"(?:as a |quick )?sanity check",
        r"(?:I|we) can (?:check|verify|confirm)",
    ),
    "reflect": (
        r"(?:but |oh,? |and |so )?wait\b",
        r"(?:but )?hold on",
        r"h+m+\b",
        r"huh\b",
        r"actually,",
        r"is (?:that|this) (?:right|correct)",
        r"did I\b",
        r"but (?:is|are|does|do|what|why|how|then|maybe|perhaps|I|the problem|that|this)\b",
        r"(?:but )?I'?m (?:not sure|confused|not certain)",
        r"maybe I (?:misread|misunderstood|made)",
        r"let me (?:re-?read|re-?examine|re-?think|reconsider|think again|go back)",
        r"going back",
    ),
    "setup": (
        r"okay\b",
        r"ok,",
        r"alright\b",
        r"all right\b",
        r"so,? I (?:need|have) to",
        r"(?:the )?(?:problem|question) (?:says|asks|states|is|gives|wants|tells)",
        r"(?:I|we)(?:'re| are) (?:given|asked|told)",
        r"let me (?:read|parse|understand|restate|start by understanding)",
        r"first,? (?:I need|let me) (?:to )?understand",
        r"I need to (?:find|figure|solve|determine|calculate|compute|work out)",
    ),
    "recall": (
        r"I (?:remember|recall)",
        r"(?:let me |let's )?recall",
        r"I know that",
        r"remember(?:ing)? that",
        r"by definition",
        r"(?:the )?formula (?:for|is)",
        r"I think (?:the formula|there's a formula|there is a formula)",
        r"(?:from|by|using) (?:the )?[A-Z][a-z]+'s (?:theorem|formula|rule|identity|law)",
        r"(?:the )?(?:definition|property|theorem|identity) (?:of|says|states)",
    ),
    "plan": (
        r"let(?: me|'s|us)\b",
        r"first(?:ly)?,",
        r"I need to",
        r"I should",
        r"I'll\b",
        r"I will\b",
        r"we need to",
        r"next,",
        r"now,? (?:let(?:'s| me)|I|we)\b",
        r"to (?:find|solve|compute|calculate|determine|figure)",
        r"maybe I (?:can|should|could)",
        r"(?:the )?(?:next |first )?step (?:is|would be)",
        r"I think (?:the best|I should|I can|I'll)",
        r"my (?:plan|approach|strategy)",
        r"then,? (?:I|we)\b",
        r"starting (?:with|from)",
        r"step \d",
    ),
    "result": (
        r"so,?\s",
        r"therefore\b",
        r"thus\b",
        r"hence\b",
        r"that means",
        r"which means",
        r"this (?:gives|means|simplifies)",
        r"putting (?:it|this|that|everything) (?:all )?together",
        r"in total",
        r"(?:so |and )?the (?:total|sum|result|product|value) (?:is|comes to|would be)",
        r"that gives",
    ),
}

# Discourse fillers that may precede the marker that really classifies a step
# ("Hmm, let me check", "Okay, so first", "Wait, just to make sure"). The step
# is classified by what follows the filler when that is one of the listed kinds;
# otherwise the filler's own kind stands. Weak fillers (hesitation, assent,
# connectives) carry no move of their own, so anything specific wins; "wait"
# and its kin announce a reconsideration, so only another pivot refines them.
WEAK_FILLERS = r"(?:h+m+|okay|ok|alright|all right|well|oh|yes|yeah|so|and|now)\b[\s,.!;:\-—]*"
WEAK_FILLER_REFINES_TO: tuple[str, ...] = (
    "final",
    "backtrack",
    "alternative",
    "verify",
    "recall",
    "plan",
)
STRONG_FILLERS = r"(?:but\s+|oh,?\s+)?(?:wait|hold on|actually)\b[\s,.!;:\-—]*(?:a (?:second|moment|minute)\b[\s,.!;:\-—]*)?"
STRONG_FILLER_REFINES_TO: tuple[str, ...] = ("final", "backtrack", "alternative", "verify")

# Reflect openings that split a step but do not open a new episode: hesitation
# and rhetorical questions that continue the current line of thought rather
# than restart it (a reconsideration cycle starts with "Wait" / "Hold on" /
# "Let me re-read", not with every "Hmm" or "But is ...").
WEAK_PIVOTS: tuple[str, ...] = (
    r"h+m+\b(?![\s,.!]*(?:wait|hold on|actually|no\b))",
    r"huh\b",
    r"but (?:is|are|does|do|what|why|how|then|maybe|perhaps|I|the problem|that|this)\b",
    r"is (?:that|this) (?:right|correct)",
    r"did I\b",
)
# A final pivot right after a step of these kinds ("Therefore, the total is 18.
# **Final Answer** \\boxed{18}") restates the conclusion just reached: it stays
# in that episode instead of opening a new top-level one.
FINAL_JOINS_CONCLUDED = True
FINAL_JOINS_AFTER: tuple[str, ...] = ("final", "result", "compute", "verify")

# Openings that begin the first attempt (Thoughtology's BLOOM) while the trace
# is still defining the problem: an ordinal or an explicit start of the work.
# Announcing a plan ("let's break this down", "I need to figure out") still
# belongs to the definition; the first attempt starts with its first move.
BLOOM_MARKERS: tuple[str, ...] = (
    r"first(?:ly| off)?\b",
    r"let(?: me|'s| us) (?:start|begin)\b",
    r"(?:\*\*)?step 1\b",
    r"starting (?:with|from)\b",
    r"to (?:start|begin)\b",
)

# Kinds that can split a paragraph at a sentence start (pivots).
PIVOT_KINDS: tuple[str, ...] = ("final", "backtrack", "alternative", "verify", "reflect")

# First matching kind wins (research note §3).
PRECEDENCE: tuple[str, ...] = (
    "final",
    "backtrack",
    "alternative",
    "verify",
    "reflect",
    "setup",
    "recall",
    "plan",
    "result",
)

# Cues matched anywhere in a closed step; they refine its kind.
ANYWHERE_CUES: dict[str, tuple[str, ...]] = {
    "final": (r"\\boxed\{", r"\*\*final answer\*\*", r"\bfinal answer\b"),
    "backtrack": (
        r"\bI made (?:a|an) (?:mistake|error)",
        r"\bthat(?:'s| is) not right\b",
        r"\bthat doesn't make sense\b",
        r"\bcontradiction\b",
        r"\bthat(?:'s| is) wrong\b",
        r"\bI miscalculated\b",
        r"\bI was wrong\b",
    ),
    "alternative": (
        r"\bthink differently\b",
        r"\banother (?:strategy|technique|approach|method|way)\b",
    ),
    "verify": (
        r"\bchecks out\b",
        r"\bsanity check\b",
        r"\bplug(?:ging)? (?:it |this |that )?back\b",
        r"\bsubstitut(?:e|ing) back\b",
        r"\bdouble[- ]check\b",
        r"[\u2713\u2714]",  # check marks
        r"\b(?:that|this|it) (?:seems|looks|is) (?:right|correct|consistent)\b",
        r"\bthat(?:'s| is) (?:correct|consistent)\b",
        r"\bmake sure\b",
    ),
    "reflect": (r"\bnot sure\b", r"\bconfus(?:ed|ing)\b"),
}

# Fact cues anywhere in a step's opening (first OPENING_CHARS): a plain or
# planning sentence that brings in a formula, definition or known property is
# recalling knowledge, not computing or planning ("For circular permutations,
# the formula is (n-1)!", "This is a linear recurrence; the general solution").
OPENING_RECALL_CUES: tuple[str, ...] = (
    r"\bformula\b",
    r"\btheorem\b",
    r"\bidentity\b",
    r"\bby definition\b",
    r"\bis defined (?:as|by)\b",
    r"\bis given by\b",
    r"\bin general\b",
    r"\bknown as\b",
    r"\bis called\b",
    r"\bgeneral (?:solution|form|term)\b",
    r"\bI (?:know|remember|recall)\b",
    r"\brecall\b",
)
RECALL_CUE_OVERRIDES: tuple[str | None, ...] = (None, "plan")

# Openings after which a verification cue anywhere in the step makes it a
# check: plain statements ("Layer 2: 1 + 3*4 = 13 ✔", "Then 240 + 126 = 366.
# Yep, that's consistent.") that re-derive a known value to confirm it.
VERIFY_CUE_OVERRIDES: tuple[str | None, ...] = (None, "plan", "result")

# A step that opened as "reflect" becomes the kind of a matching anywhere cue.
REFLECT_REFINES_TO: tuple[str, ...] = ("backtrack", "alternative", "verify")

# Explicit back-references in a pivot's opening window (revisit rule).
BACK_REFERENCES: tuple[str, ...] = (
    r"\bgoing back to\b",
    r"\bgo back to\b",
    r"\bback to (?:the|step|my|our)\b",
    r"\bearlier\b",
    r"\bpreviously\b",
    r"\bas (?:before|above)\b",
    r"\b(?:equation|expression|step|calculation|result) above\b",
    r"\bthe (?:first|second|original|previous|earlier) (?:approach|method|case|step|equation|"
    r"calculation|attempt)\b",
    r"\bstep \d+\b",
    r"\brevisit\b",
    r"\breturn(?:ing)? to\b",
)

# Verdict of a verification episode: confirms the checked result ...
CONFIRM_CUES: tuple[str, ...] = (
    r"\bcorrect\b",
    r"\bchecks out\b",
    r"\bmatches\b",
    r"\bconsistent\b",
    r"\bthat(?:'s| is) right\b",
    r"\byes\b",
    r"\byep\b",
    r"\bconfirm(?:s|ed)\b",
    r"\bsame (?:answer|result)\b",
    r"\bworks\b",
)
# ... unless it also finds a problem.
REFUTE_CUES: tuple[str, ...] = (
    r"\bmistake\b",
    r"\bwrong\b",
    r"\bincorrect\b",
    r"\bnot correct\b",
    r"\bdoesn't (?:match|work|add up)\b",
    r"\bdoes not (?:match|work)\b",
    r"\bcontradiction\b",
    r"\bdiscrepancy\b",
    r"\bisn't right\b",
)

# Math signals for the compute/result fallback.
MATH_SIGNS: tuple[str, ...] = (
    r"=",
    r"\\frac",
    r"\\cdot",
    r"\\times",
    r"\d\s*[-+*/\u00d7\u00f7^]\s*\d",  # also multiplication / division signs
)
# Share of digits among non-space characters that makes a step arithmetic.
DIGIT_SHARE_COMPUTE = 0.15
# "is <value>" after a conclusion marker makes a result.
VALUE_STATEMENT = r"(?:=|\bis\b|\bequals\b|\bgives\b|\bcomes to\b)\s*\$?\\?\(?\s*-?\d"

# Words ignored by the overlap (revisit) rule.
_STOPWORD_TEXT = (
    "about above after again also although another because been before being between both "
    "could does doing down each even every first from have having here into just know like "
    "maybe might more most much must need next only other over same should since some such "
    "than that then there these they thing think this those though through under until very "
    "want wait well were what when where which while will with would your hmm okay alright "
    "actually let's let check verify right correct make sure so the and but for are was "
)
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())
# Minimum shared tokens and share of the window's tokens for "strong overlap".
OVERLAP_MIN_SHARED = 3
OVERLAP_MIN_SHARE = 0.6
# The most recent steps are excluded from the revisit search (86% of Thought
# Anchors dependencies point at the previous sentence: that is flow, not a revisit).
OVERLAP_SKIP_RECENT = 2
