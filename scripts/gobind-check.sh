#!/usr/bin/env bash
# gobind-check.sh — check the gomobile bindings of ./mobile.
#
# 1. Installs golang.org/x/mobile/cmd/gobind (GOBIND_VERSION, default latest) through the
#    Go module proxy into a temporary directory.
# 2. Generates the Java and Objective-C bindings of ./mobile. gobind copies its support
#    files (go.Seq …) from golang.org/x/mobile/bind, which must be in the build list: a
#    temporary go.work adds a helper module that requires it, so the repository's go.mod
#    and go.sum stay untouched.
# 3. Fails if gobind skipped anything: it drops unbindable functions, methods, fields,
#    constants and variables silently (a "// skipped …" comment), so every exported name
#    of ./mobile (listed from its source with go/ast) must appear in both the generated
#    Java and the Objective-C header.
# 4. Compiles the generated Java with javac when a JDK is installed (skipped with a
#    message otherwise). go.Seq imports android.content.Context only for setContext; a
#    one-line stub stands in for it, so no Android SDK is needed.
#
# Needs only Go (and optionally javac). Run it from anywhere: bash scripts/gobind-check.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=./mobile
VERSION=${GOBIND_VERSION:-latest}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gobind-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { printf '== %s\n' "$*"; }

step "install gobind@$VERSION"
GOBIN="$WORK/bin" GOWORK=off GOFLAGS=-mod=mod go install "golang.org/x/mobile/cmd/gobind@$VERSION"
MOBILE_VERSION=$(go version -m "$WORK/bin/gobind" | awk '$1 == "mod" && $2 == "golang.org/x/mobile" { print $3 }')
[ -n "$MOBILE_VERSION" ] || { echo "gobind-check: cannot read the golang.org/x/mobile version of gobind" >&2; exit 1; }
echo "golang.org/x/mobile $MOBILE_VERSION"

GO_VERSION=$(awk '$1 == "go" { print $2; exit }' "$ROOT/go.mod")
mkdir -p "$WORK/helper"
cat > "$WORK/helper/go.mod" <<EOF
module meshsync.invalid/gobindhelper

go $GO_VERSION

require golang.org/x/mobile $MOBILE_VERSION
EOF
printf 'package gobindhelper\n\nimport _ "golang.org/x/mobile/bind"\n' > "$WORK/helper/helper.go"
printf 'go %s\n\nuse (\n\t%s\n\t%s\n)\n' "$GO_VERSION" "$ROOT" "$WORK/helper" > "$WORK/go.work"
export GOWORK="$WORK/go.work"
(cd "$WORK/helper" && go mod download golang.org/x/mobile)

step "gobind -lang=go,java,objc $PKG"
(cd "$ROOT" && "$WORK/bin/gobind" -lang=go,java,objc -outdir "$WORK/out" "$PKG")
[ -d "$WORK/out/java" ] && [ -n "$(ls "$WORK"/out/src/gobind/*.objc.h 2>/dev/null)" ] || {
	echo "gobind-check: gobind produced no Java or Objective-C output" >&2
	exit 1
}

step "compare the bindings with the exported API of $PKG"
mkdir -p "$WORK/apicheck"
cat > "$WORK/apicheck/main.go" <<'EOF'
// Command apicheck lists the exported API of a Go package from its source and checks that
// gobind's Java and Objective-C output carries every name of it.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

func lcFirst(s string) string {
	r := []rune(s)
	// gobind lowers a leading run of capitals in the Java/ObjC names of methods: PeerID → peerID.
	return string(unicode.ToLower(r[0])) + string(r[1:])
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: apicheck PKGDIR OUTDIR")
		os.Exit(2)
	}
	pkgDir, outDir := os.Args[1], os.Args[2]
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, pkgDir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil || len(pkgs) != 1 {
		fmt.Fprintln(os.Stderr, "apicheck: parse:", err, len(pkgs))
		os.Exit(2)
	}
	var pkgName string
	var files []*ast.File
	for name, p := range pkgs {
		pkgName = name
		for _, f := range p.Files {
			files = append(files, f)
		}
	}
	prefix := strings.ToUpper(pkgName[:1]) + pkgName[1:] // ObjC prefix and Java class of package functions
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		return string(b)
	}
	javaDir := filepath.Join(outDir, "java", pkgName)
	javaPkg := read(filepath.Join(javaDir, prefix+".java"))
	objc := read(filepath.Join(outDir, "src", "gobind", prefix+".objc.h"))
	var problems, checked []string
	has := func(text, re string) bool { return regexp.MustCompile(re).MatchString(text) }
	check := func(what string, java, javaRe, objcRe string) {
		checked = append(checked, what)
		if !has(java, javaRe) {
			problems = append(problems, what+": missing from the Java bindings")
		}
		if !has(objc, objcRe) {
			problems = append(problems, what+": missing from the Objective-C bindings")
		}
	}
	q := regexp.QuoteMeta
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv == nil {
					check("func "+d.Name.Name, javaPkg, `\s`+q(lcFirst(d.Name.Name))+`\(`, `\s`+q(prefix+d.Name.Name)+`\(`)
					continue
				}
				t := d.Recv.List[0].Type
				if s, ok := t.(*ast.StarExpr); ok {
					t = s.X
				}
				id, ok := t.(*ast.Ident)
				if !ok || !id.IsExported() {
					continue
				}
				m := lcFirst(d.Name.Name)
				check("method "+id.Name+"."+d.Name.Name, read(filepath.Join(javaDir, id.Name+".java")),
					`\s`+q(m)+`_?\(`, `\)`+q(m)+`[:;]`)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						java := read(filepath.Join(javaDir, s.Name.Name+".java"))
						switch tt := s.Type.(type) {
						case *ast.InterfaceType:
							check("interface "+s.Name.Name, java, `interface `+q(s.Name.Name)+`\b`, `@protocol `+q(prefix+s.Name.Name)+`\b`)
							for _, m := range tt.Methods.List {
								for _, n := range m.Names {
									check("method "+s.Name.Name+"."+n.Name, java, `\s`+q(lcFirst(n.Name))+`\(`, `\)`+q(lcFirst(n.Name))+`[:;]`)
								}
							}
						case *ast.StructType:
							check("type "+s.Name.Name, java, `class `+q(s.Name.Name)+`\b`, `@interface `+q(prefix+s.Name.Name)+`\b`)
							for _, fl := range tt.Fields.List {
								for _, n := range fl.Names {
									if n.IsExported() {
										check("field "+s.Name.Name+"."+n.Name, java, `\s`+q("get"+n.Name)+`\(`, `\)`+q(lcFirst(n.Name))+`;`)
									}
								}
							}
						default:
							problems = append(problems, "type "+s.Name.Name+": only structs and interfaces are bindable")
						}
					case *ast.ValueSpec:
						kind := "var"
						if d.Tok == token.CONST {
							kind = "const"
						}
						for _, n := range s.Names {
							if n.IsExported() {
								javaRe := `\s` + q(n.Name) + `\s*=`
								if kind == "var" {
									javaRe = `\s` + q("get"+n.Name) + `\(`
								}
								check(kind+" "+n.Name, javaPkg, javaRe, `\b`+q(prefix+n.Name)+`\b`)
							}
						}
					}
				}
			}
		}
	}
	// Anything gobind says it skipped, in any generated file.
	filepath.Walk(outDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		for i, line := range strings.Split(read(p), "\n") {
			if strings.Contains(line, "skipped ") && strings.Contains(line, "unsupported") {
				rel, _ := filepath.Rel(outDir, p)
				problems = append(problems, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	sort.Strings(problems)
	fmt.Printf("%d exported names checked in Java and Objective-C\n", len(checked))
	if len(problems) > 0 {
		fmt.Println("gobind dropped or skipped:")
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		os.Exit(1)
	}
}
EOF
(cd "$WORK/apicheck" && GOWORK=off GOFLAGS= go run main.go "$ROOT/mobile" "$WORK/out")

if command -v javac >/dev/null 2>&1; then
	step "javac the generated Java ($(javac -version 2>&1))"
	mkdir -p "$WORK/stub/android/content" "$WORK/classes"
	# go.Seq.setContext takes an android.content.Context; nothing else needs Android.
	printf 'package android.content;\n\npublic class Context {}\n' > "$WORK/stub/android/content/Context.java"
	find "$WORK/out/java" "$WORK/stub" -name '*.java' > "$WORK/sources.txt"
	javac -Xlint:none -nowarn -d "$WORK/classes" @"$WORK/sources.txt"
	echo "$(find "$WORK/classes" -name '*.class' | wc -l) classes compiled"
else
	step "javac not found: skipping the compilation of the generated Java"
fi
step "gobind check passed"
