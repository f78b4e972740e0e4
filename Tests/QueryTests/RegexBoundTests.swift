import Foundation
import ProfileModel
import Query
import Testing

/// Selector regular expressions run in time linear in the value (LinearRegex), agree with a backtracking
/// engine on ordinary patterns, and refuse what RE2 refuses.
@Suite struct RegexBoundTests {
    static let patterns = [
        "abc", "a.c", "a*", "a+b?", "(ab|cd)+", "[a-c]+x", "[^a-c]*", "\\d{2,3}", "x{2}", "x{2,}", "(?i)abc",
        "foo|bar|", "a(?:b|c)*d", "\\w+-\\d", "a{0}", ".*", "", "(a|ab)(c|bcd)(d*)", "[\\d.]+",
        "\\.", "[a\\-z]+", "ü+", "(?i:AB)c", "x(?i)b|c", "(?<n>a)+", "a{1,2}?b", "\\x41\\x{42}",
    ]
    static let inputs = [
        "", "abc", "aBc", "ac", "aaa", "abab", "cd", "ababcd", "bbx", "12", "1234", "xx", "xxx", "foo", "bar", "abcd",
        "abbbcd", "hello-1", "a.c", "ü", "üü", "AB c", "ABc", "abcbcdd", "1.2.3", "-", "a-z", "xB", "c", "C", "aab", "]a", "AB",
    ]

    @Test func agreesWithABacktrackingEngine() throws {
        var compared = 0
        for p in Self.patterns {
            let linear = try LinearRegex(p)
            let reference = try NSRegularExpression(pattern: "^(?:" + p + ")$")
            for s in Self.inputs {
                let expected = reference.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
                #expect(linear.wholeMatch(s) == expected, "\(p) on \"\(s)\"")
                compared += 1
            }
        }
        #expect(compared == Self.patterns.count * Self.inputs.count)
    }

    @Test func catastrophicPatternsFinishQuickly() throws {
        let long = String(repeating: "a", count: 5_000)
        let cases: [(String, String, Bool)] = [
            ("(a+)+b", long, false), ("(a|aa)*c", long, false), ("(.*a){20}", long, true), ("(a*)*", long, true),
            ("(x+x+)+y", String(repeating: "x", count: 5_000), false), ("(\\w|\\d)*!", long, false),
        ]
        let clock = ContinuousClock()
        for (pattern, value, expected) in cases {
            let regex = try LinearRegex(pattern)
            let elapsed = clock.measure { #expect(regex.wholeMatch(value) == expected, "\(pattern)") }
            #expect(elapsed < .seconds(2), "\(pattern) over \(value.count) characters took \(elapsed)")
        }
        // The same through a selector, as a query evaluates it.
        let selector = try LabelSelector(parsing: #"{service_name=~"(a+)+b"}"#)
        let elapsed = clock.measure { #expect(!selector.matches(LabelSet(["service_name": long]))) }
        #expect(elapsed < .seconds(2))
    }

    @Test func speaksRE2WhereICUDiffers() throws {
        #expect(try LinearRegex("(?P<n>a)+").wholeMatch("aa"), "Go's named groups")
        #expect(try LinearRegex("[[:alpha:]]+").wholeMatch("abZ"))
        #expect(try !LinearRegex("[[:alpha:]]+").wholeMatch("ü"), "POSIX classes are ASCII, as in RE2")
        #expect(try LinearRegex("a.b").wholeMatch("a\nb"), "dot matches a newline (selectors are anchored whole-value matches)")
    }

    @Test func refusesWhatRE2Refuses() {
        let bad: [(String, String)] = [
            ("\\1", "backreferences"), ("(?=a)", "look-around"), ("a{1001}", "larger than 1000"),
            ("(a{1000}){10}", "too large"), ("(", "missing"), (")", "unmatched"), ("*a", "missing argument"),
            ("a**", "nested repetition"), ("[z-a]", "range"), ("[a", "missing"), ("(?x)a", "flag"),
        ]
        for (pattern, expected) in bad {
            #expect { try LinearRegex(pattern) } throws: { error in "\(error)".contains(expected) }
        }
        #expect { try LabelSelector(parsing: #"{a=~"(?<=x)y"}"#) } throws: { error in
            (error as? QueryError)?.kind == .invalidArgument && "\(error)".contains("look-around")
        }
    }
}
