import Foundation

/// The simple commands of a `run:` script, enough to recognise a command and its arguments
/// (`npm install x`, `echo "$X" >> "$GITHUB_ENV"`, `twine upload`): words split on blanks outside
/// quotes, commands split at newlines, `;`, `&&`, `||` and `|`, comments dropped, `\`-continued
/// lines joined. Not a shell parser: no expansion, no control structures beyond their keywords.
struct ShellCommand: Equatable {
    /// The words, quotes kept (`"$GITHUB_ENV"`), redirection operators as words of their own.
    var words: [String]
    /// 1-based line of the script the command starts on.
    var line: Int

    /// The words with control keywords (`then`, `do`, `if` …) and leading `sudo`/`env X=Y` removed.
    var program: [String] {
        var w = words
        while let first = w.first, ["then", "do", "else", "if", "elif", "while", "until", "!", "{", "(", "time", "exec", "sudo"].contains(first)
                || (first.contains("=") && !first.hasPrefix("-") && !first.hasPrefix("=")) { w.removeFirst() }
        return w
    }

    /// The arguments after the program name, without redirections and their targets.
    var arguments: [String] {
        var out: [String] = []
        var skip = false
        for w in program.dropFirst() {
            if skip { skip = false; continue }
            if [">", ">>", "<", "2>", "2>>", "&>", "<<<"].contains(w) { skip = true; continue }
            out.append(w)
        }
        return out
    }

    /// Targets of `>` and `>>` redirections.
    var redirectTargets: [String] {
        var out: [String] = []
        for (i, w) in words.enumerated() where (w == ">" || w == ">>") && i + 1 < words.count { out.append(words[i + 1]) }
        return out
    }

    var text: String { words.joined(separator: " ") }
}

enum ShellScript {
    static func commands(_ script: String) -> [ShellCommand] {
        var out: [ShellCommand] = []
        var words: [String] = []
        var word = ""
        var quote: Character?
        var line = 1, commandLine = 1
        var wordStarted = false
        let chars = Array(script)
        var i = 0
        func endWord() { if wordStarted { words.append(word) }; word = ""; wordStarted = false }
        func endCommand() { endWord(); if !words.isEmpty { out.append(ShellCommand(words: words, line: commandLine)) }; words = []; commandLine = line }
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                word.append(c)
                if c == "\n" { line += 1 }
                if c == q { quote = nil } else if c == "\\" && q == "\"" && i + 1 < chars.count { word.append(chars[i + 1]); i += 1 }
                i += 1; continue
            }
            switch c {
            case "'", "\"":
                quote = c; word.append(c); wordStarted = true
            case "\\" where i + 1 < chars.count && chars[i + 1] == "\n":
                line += 1; i += 1
            case "\\" where i + 1 < chars.count:
                word.append(c); word.append(chars[i + 1]); wordStarted = true; i += 1
            case " ", "\t":
                endWord()
            case "\n":
                line += 1
                endCommand()
            case ";", "&", "|":
                if c == "&", i + 1 < chars.count, chars[i + 1] == ">" { endWord(); words.append("&>"); i += 1; break }
                if (c == "&" || c == "|"), i + 1 < chars.count, chars[i + 1] == c { i += 1 }
                endCommand()
            case ">", "<":
                if c == ">" && word == "2" { word = ""; wordStarted = false; words.append(i + 1 < chars.count && chars[i + 1] == ">" ? "2>>" : "2>") }
                else {
                    endWord()
                    if i + 1 < chars.count, chars[i + 1] == c { words.append(String([c, c])); i += 1 }
                    else { words.append(String(c)) }
                }
                if words.last == "2>>" { i += 1 }
            case "#" where !wordStarted:
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            default:
                word.append(c); wordStarted = true
            }
            i += 1
        }
        endCommand()
        return out
    }

    /// A word with no expansion: plain, '…', or "…" without `$` or backquotes.
    static func isStatic(_ word: String) -> Bool {
        if word.hasPrefix("'") && word.hasSuffix("'") && word.count >= 2 { return true }
        return !word.contains("$") && !word.contains("`")
    }

    /// The word without its surrounding quotes.
    static func unquoted(_ word: String) -> String {
        if word.count >= 2, let f = word.first, f == "'" || f == "\"", word.last == f { return String(word.dropFirst().dropLast()) }
        return word
    }
}
