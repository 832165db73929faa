// Command health reads Kubernetes objects (a JSON array) on stdin and prints, for each, what
// the GitOps tools make of it: kstatus (sigs.k8s.io/cli-utils, what Flux's health checks and
// kpt use) and an Argo CD Lua health script run the way Argo CD runs it (gopher-lua).
//
//	health [-lua manifests/argocd/health.lua] < objects.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kstatus        string `json:"kstatus"`
	KstatusMessage string `json:"kstatusMessage"`
	Argocd         string `json:"argocd,omitempty"`
	ArgocdMessage  string `json:"argocdMessage,omitempty"`
}

// toLua converts decoded JSON to Lua values as Argo CD does (objects and arrays become tables).
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

// argocd runs the script with the libraries Argo CD opens and reads hs.status/hs.message.
func argocd(script string, obj map[string]interface{}) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return result.RawGetString("status").String(), result.RawGetString("message").String(), nil
}

func main() {
	luaPath := flag.String("lua", "", "an Argo CD health.lua to run as well")
	flag.Parse()
	// Integers decode as int64, as unstructured objects (and kstatus) expect them.
	var objects []map[string]interface{}
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = utiljson.Unmarshal(data, &objects)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "health: stdin:", err)
		os.Exit(2)
	}
	script := ""
	if *luaPath != "" {
		data, err := os.ReadFile(*luaPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "health:", err)
			os.Exit(2)
		}
		script = string(data)
	}
	out := make([]verdict, 0, len(objects))
	for _, obj := range objects {
		result, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			fmt.Fprintln(os.Stderr, "health: kstatus:", err)
			os.Exit(1)
		}
		v := verdict{Kstatus: result.Status.String(), KstatusMessage: result.Message}
		if script != "" {
			if v.Argocd, v.ArgocdMessage, err = argocd(script, obj); err != nil {
				fmt.Fprintln(os.Stderr, "health: argocd lua:", err)
				os.Exit(1)
			}
		}
		out = append(out, v)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
