import { resolve } from 'node:path'
import { defineConfig, type Plugin } from 'vite'

// The Python server (`collab serve`) serves these files; during `npm run dev`
// Vite proxies the API and the WebSocket to it instead.
const backend = process.env.COLLAB_DEV_BACKEND ?? 'http://127.0.0.1:8000'

// In production the server maps GET /d/{doc_id} to editor.html; mirror that in dev.
const rewriteEditorRoute = (req: { url?: string }, _res: unknown, next: () => void): void => {
  if (req.url?.startsWith('/d/')) {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : ''
    req.url = '/editor.html' + query
  }
  next()
}

const editorRoute = (): Plugin => ({
  name: 'collab-editor-route',
  configureServer: (server) => void server.middlewares.use(rewriteEditorRoute),
  configurePreviewServer: (server) => void server.middlewares.use(rewriteEditorRoute),
})

export default defineConfig({
  // Relative: the server's <base href> (its mount prefix) locates the assets.
  base: './',
  plugins: [editorRoute()],
  build: {
    outDir: '../collab/static',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    // The editor (Tiptap + ProseMirror + Yjs) is one ~160 kB gzipped chunk by design.
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        editor: resolve(import.meta.dirname, 'editor.html'),
      },
    },
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': backend,
      '/ws': { target: backend, ws: true },
    },
  },
  preview: {
    host: '127.0.0.1',
  },
})
